"""Where findings go: the local SQLite store (always) and Elasticsearch/OpenSearch.

- :mod:`.local` — documents and hits in the state store; ``query_hits`` for the CLI.
- :mod:`.ecs` — the ECS hit and coverage documents, deterministic ids, index names.
- :mod:`.templates` — strict index templates, ILM/ISM retention policies.
- :mod:`.spool` — documents waiting for the cluster; ``drain`` delivers them.
- :mod:`.client` — one interface over the elasticsearch and opensearch-py clients.
- :mod:`.setup` — ``es setup`` / ``es check``.
- :mod:`.retention` — local purge.
"""
