"""DAG-building helpers shared by the DAG files (ids, tags, Params, Assets, notifiers).

Listed in `dags/.airflowignore`: the DAG processor does not parse these modules as DAG files, and
it re-imports them with every DAG file it parses, so an edit is picked up without a restart.
"""
