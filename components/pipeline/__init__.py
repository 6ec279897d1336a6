"""The pipeline: how each stage runs, in every runtime.

* ``options``: ``RunOptions``, what one run may choose among configured things;
* ``stages``: the six stages (discover, evaluate, export, warmup, publish, report), each a function of the
  config, its input artifacts and the run options, returning a typed result and keeping the ledger current;
* ``runner``: the plain runner, every stage in a loop in one process (CLI, tests, benches);
* ``envelope``: the remote envelope, one JSON request in and one outcome out, which every Airflow task goes
  through (in the task process, another interpreter, or a pod: ``python -m components.stage_entry``);
* ``report``: what a run published, as asset events and as a table.

Nothing is imported here, so importing one module (``options`` at DAG parse time) stays cheap.
"""
