"""One module per DVC stage, each with a ``main()``; ``python -m catsdogs.stages <name>`` runs one."""
