"""Task types of the language whose execution arrives in a later version (SPEC §3.2, §4): flows
using them validate, so editors and `tflow validate` accept them, but `tflow run` refuses to start
a flow containing one, naming the task, instead of running half of it (`TaskType.runs_yet=False`).

None at present: every declared type runs."""
