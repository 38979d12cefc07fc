"""`tflow webui`: a local web page of a flow's graph and its runs' live task states (SPEC §8).

The server (`server.py`, aiohttp) is the only part that talks to Temporal; the page (`static/`,
plain HTML/JS/CSS shipped in the package) reads JSON and server-sent events from it. The server
answers its own page only (`guard.py`) and sends it no SECRET value (`masking.py`), SPEC §10.
"""
