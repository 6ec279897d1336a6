"""Airflow adapters for exportflow: operators, params, sensor/trigger and the UI plugin.

Everything here imports the ``components`` library lazily, inside ``execute()``, so that parsing a DAG
that uses these operators never loads TensorFlow.
"""
