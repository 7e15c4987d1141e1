"""What a survey campaign is made of: rules, I/O and the Prefect steps that call them.

Purpose and scope
    Everything ``flows/`` wires: loading and cleaning recipients, the never-text store, slots in
    lawful hours, planning and money, the exactly-once send, reports, follow-up, cancel, privacy.
    It does NOT hold flows (``flows/``), the gateway's HTTP client or its simulator
    (``smspartner/``), or deployments (``deployments/``).

Three kinds of module (``tests/test_layers.py`` reads every import and holds these lines)
    steps    ``steps/``: every ``@task``, artifact, pause, event and run name. Only here (and in
             ``runtime``) is Prefect imported.
    rules    pure decisions from explicit inputs, table-tested: ``plan``, ``accounting``,
             ``money``, ``sendcore``, ``slots``, ``approval``, ``cancellation``, ``delivery``,
             ``i18n``, ``errors``, ``outcomes``, ``row_columns``, ``numbers/``,
             ``ledger/model.py``, ``reporting/summary.py``, ``reporting/markdown.py``... No
             Prefect, SQLAlchemy, requests, clock, file system, ``runtime``, ledger store or I/O
             module: what they need is handed in (``now``, look-ups as functions).
    I/O      files, databases, the gateway, never Prefect: ``ledger/`` (the store), ``nevertext``,
             ``recipients/`` (CSV, Excel, SQL), ``rows_file``, ``folders``, ``files``,
             ``sending`` (the send executor), ``cancel_io``, ``delivery_io``, ``privacy``,
             ``reporting/`` (HTML, CSV/XLSX, the report folder), ``progress``, ``alerts/``,
             ``dburl``.
    runtime  ``runtime``: the one reader of the environment and of Secret blocks; it builds the
             stores and hands them what they need (the pseudonym key, the data folder).

Who may import whom
    flows -> steps -> rules and I/O -> rules. A rules module imports only rules; an I/O module
    never imports a step; nothing here imports ``flows``.

Where to start reading
    ``steps/prepare.py`` (what happens before a send), ``steps/send.py`` with ``sendcore`` and
    ``sending`` (the exactly-once send), ``errors`` (what can stop a run, drawn as a tree),
    ``outcomes`` (the words every report uses), ``ledger/`` (what is remembered, and for how
    long).
"""
