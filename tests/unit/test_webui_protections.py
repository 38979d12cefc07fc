"""The web view's allow-list of Host values and its masking of SECRET values, without a server
(the server's behaviour: tests/integration/test_webui_guard.py, tests/e2e/test_webui.py)."""

from __future__ import annotations

from client.webui.guard import Refusal, allowed_hosts, url_host
from client.webui.masking import MASK, Masker, page_inputs
from temporal_flows.model.flow import Flow


def test_allowed_hosts_are_the_loopback_names_and_the_bound_host_at_the_bound_port() -> None:
    assert allowed_hosts("127.0.0.1", [8000]) == {"127.0.0.1:8000", "localhost:8000", "[::1]:8000"}
    assert "box.lan:8000" in allowed_hosts("Box.LAN", [8000])
    assert "[fe80::1]:9000" in allowed_hosts("fe80::1", [9000])
    assert allowed_hosts("0.0.0.0", [8000]) == allowed_hosts("::", [8000]) == allowed_hosts("127.0.0.1", [8000])
    assert "localhost" in allowed_hosts("127.0.0.1", [80]) and "localhost" not in allowed_hosts("127.0.0.1", [8000])
    assert "localhost:8001" not in allowed_hosts("localhost", [8000])


def test_the_page_url_names_a_wildcard_bind_by_its_loopback_address() -> None:
    assert [url_host(host) for host in ("0.0.0.0", "", "::", "::1", "[::1]", "box.lan")] == \
        ["127.0.0.1", "127.0.0.1", "[::1]", "[::1]", "[::1]", "box.lan"]


def flow_with_secrets() -> Flow:
    return Flow(id="f", namespace="n", tasks=[], inputs=[
        {"id": "name", "type": "STRING", "defaults": "world"},
        {"id": "key", "type": "SECRET", "defaults": "k-default"},
        {"id": "other", "type": "SECRET", "required": False},
    ], outputs=[{"id": "hidden", "type": "SECRET", "value": "x"}, {"id": "shown", "type": "STRING", "value": "y"}])


def test_the_page_gets_no_secret_default() -> None:
    shown = page_inputs(flow_with_secrets().inputs)
    assert shown[0] == {"id": "name", "type": "STRING", "defaults": "world"}
    assert shown[1] == {"id": "key", "type": "SECRET", "default_hidden": True}
    assert shown[2] == {"id": "other", "type": "SECRET", "required": False}


def test_a_runs_secrets_are_masked_wherever_they_appear() -> None:
    masker = Masker.of_run(flow_with_secrets(), {"name": "ann", "other": "pass-long", "key": None})
    result = {"outputs": {"hidden": "anything", "shown": "ann"},
              "error": {"message": "bad pass-long and k-default"},
              "task_runs": [{"outputs": {"value": ["x pass-long", {"pass-long": 1}]}, "attempts": 2}]}
    assert masker.run(result) == {
        "outputs": {"hidden": MASK, "shown": "ann"},
        "error": {"message": f"bad {MASK} and {MASK}"},
        "task_runs": [{"outputs": {"value": [f"x {MASK}", {MASK: 1}]}, "attempts": 2}],
    }
    assert Masker.of_run(flow_with_secrets(), {"other": "pass"}).values == ("k-default", "pass")
    assert Masker.of_run(flow_with_secrets(), {"other": ""}).values == ("k-default",)
    assert Masker().scrub({"a": "b"}) == {"a": "b"}


def test_a_refusal_prints_on_one_line_without_the_senders_escapes() -> None:
    line = str(Refusal("POST", "/api/runs", "evil\x1b[2J:1", "http://x\r\ny", 403, "no"))
    assert line == "tflow webui refused POST /api/runs (Host evil?[2J:1, Origin http://x??y): no"
    assert len(str(Refusal("GET", "/" + "a" * 5000, "h", None, 403, "no"))) == 400
