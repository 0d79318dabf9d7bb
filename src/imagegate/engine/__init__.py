"""Job execution. ``dbos_engine`` is the only module in imagegate that imports DBOS;
``runner`` holds the steps as plain async functions."""
