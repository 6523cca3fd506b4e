"""The retention policy and the index templates as one unit; content checks; the server
version check; replicas; ``event.ingested``; re-sighting updates.

osmem-server (the test server) has no ILM and no ISM (REFERENCE.md) and, like
OpenSearch, refuses the ILM index setting ``index.lifecycle.name``. So the
"installed together" logic is tested twice:

- against osmem alone: the policy part is detected as unsupported and skipped
  with a clear note, the templates still go in;
- through :class:`ElasticsearchFront` / :class:`OpenSearchIsmFront`, real local
  HTTP receivers in front of osmem that answer the policy endpoints the way
  Elasticsearch (ILM) and OpenSearch (ISM) do — including the 404 for a
  missing policy, the defaults Elasticsearch adds to a stored policy, and
  ISM's seq_no/primary_term update rule — and that keep the ILM setting out of
  osmem while returning it on GET as Elasticsearch does. Everything else
  (templates, indices, mappings, bulk) is the real server's work. The fronts
  record the order of requests, so a template that names a policy which does
  not exist yet is caught.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch

import pytest
from fixtures_osmem import CompatProxy, OsmemProcess

from leaksentry.config import Settings
from leaksentry.store import Store
from pipelines.flow import record_finding
from pipelines.sinks import setup, spool
from pipelines.sinks.client import connect
from pipelines.sinks.ecs import ECS_VERSION

ES_INFO = {"name": "es01", "cluster_name": "soc", "cluster_uuid": "x",
           "version": {"number": "8.15.0", "build_flavor": "default", "build_type": "docker",
                       "lucene_version": "9.11.1",
                       "minimum_wire_compatibility_version": "7.17.0"},
           "tagline": "You Know, for Search"}


def _json(data: bytes | None) -> dict:
    return json.loads(data) if data else {}


class ElasticsearchFront:
    """Answers ``GET /`` and ``/_ilm/policy/*`` like Elasticsearch 8.15; keeps
    ``index.lifecycle.name`` (templates and index settings) in its own table and returns
    it on GET, applying a template's setting to indices created from it, as ES does."""

    def __init__(self, osmem: OsmemProcess, version: str = "8.15.0") -> None:
        self.info = json.loads(json.dumps(ES_INFO))
        self.info["version"]["number"] = version
        self.policies: dict[str, dict] = {}
        self.template_policy: dict[str, str] = {}
        self.index_policy: dict[str, str] = {}
        self.log: list[tuple[str, str]] = []
        self.dangling: list[str] = []  # templates naming a policy that did not exist yet
        self.proxy = CompatProxy(osmem, intercept=self.answer, rewrite=self.rewrite,
                                 on_response=self.respond)
        self.url = self.proxy.url

    def answer(self, method, path, body, headers):
        self.log.append((method, path.split("?")[0]))
        if path == "/" and method == "GET":
            return 200, json.dumps(self.info).encode()
        if path.startswith("/_ilm/policy/"):
            name = path.split("?")[0].rsplit("/", 1)[1]
            if method == "PUT":
                policy = _json(body)["policy"]
                stored = json.loads(json.dumps(policy))
                for phase in stored.get("phases", {}).values():  # ES stores its defaults
                    if "delete" in phase.get("actions", {}):
                        phase["actions"]["delete"].setdefault("delete_searchable_snapshot",
                                                              True)
                old = self.policies.get(name, {"version": 0})
                self.policies[name] = {"version": old["version"] + 1,
                                       "modified_date": "2026-12-03T00:00:00Z",
                                       "policy": stored}
                return 200, b'{"acknowledged":true}'
            if method == "GET":
                if name not in self.policies:
                    return 404, json.dumps({"error": {
                        "type": "resource_not_found_exception",
                        "reason": f"Lifecycle policy not found: {name}"}, "status": 404}).encode()
                return 200, json.dumps({name: self.policies[name]}).encode()
        return None

    def rewrite(self, method, path, body):
        p = path.split("?")[0]
        if method == "PUT" and p.startswith("/_index_template/"):
            doc = _json(body)
            name = p.rsplit("/", 1)[1]
            policy = doc.get("template", {}).get("settings", {}).pop("index.lifecycle.name",
                                                                      None)
            if policy:
                self.template_policy[name] = policy
                if policy not in self.policies:
                    self.dangling.append(name)
            return json.dumps(doc).encode()
        if method == "PUT" and p.endswith("/_settings"):
            doc = _json(body)
            policy = doc.get("index", {}).pop("lifecycle", {}).get("name")
            if policy:
                self.index_policy[p.strip("/").split("/")[0]] = policy
            return json.dumps(doc).encode()
        return body

    def respond(self, method, path, status, data):
        p = path.split("?")[0]
        if method == "GET" and p.startswith("/_index_template/") and status == 200:
            doc = _json(data)
            for t in doc.get("index_templates", []):
                policy = self.template_policy.get(t["name"])
                if policy:
                    t["index_template"]["template"]["settings"].setdefault("index", {})[
                        "lifecycle"] = {"name": policy}
            return json.dumps(doc).encode()
        if method == "GET" and p.endswith("/_settings") and status == 200:
            doc = _json(data)
            for index, body in doc.items():
                policy = self.policy_of(index)
                if policy:
                    body["settings"]["index"]["lifecycle"] = {"name": policy}
            return json.dumps(doc).encode()
        return data

    def policy_of(self, index: str) -> str | None:
        """An index's ILM policy: set on it, else from the template it was created by."""
        if index in self.index_policy:
            return self.index_policy[index]
        for name, policy in self.template_policy.items():
            if index.startswith(name + "-"):
                return policy
        return None

    def close(self) -> None:
        self.proxy.close()


class OpenSearchIsmFront:
    """Answers ``/_plugins/_ism/*`` like OpenSearch: a PUT of an existing policy without
    ``if_seq_no``/``if_primary_term`` is a 409; ``add`` attaches a policy to an index
    (and fails for an index that has one)."""

    def __init__(self, osmem: OsmemProcess) -> None:
        self.policies: dict[str, dict] = {}
        self.managed: dict[str, str] = {}
        self.log: list[tuple[str, str]] = []
        self.proxy = CompatProxy(osmem, intercept=self.answer)
        self.url = self.proxy.url

    def answer(self, method, path, body, headers):
        p, _, query = path.partition("?")
        self.log.append((method, p))
        if p.startswith("/_plugins/_ism/policies/"):
            name = p.rsplit("/", 1)[1]
            cur = self.policies.get(name)
            if method == "GET":
                if cur is None:
                    return 404, json.dumps({"error": {"type": "status_exception",
                                                      "reason": "Policy not found"},
                                            "status": 404}).encode()
                return 200, json.dumps({"_id": name, **cur}).encode()
            if method == "PUT":
                if cur is not None and f"if_seq_no={cur['_seq_no']}" not in query:
                    return 409, json.dumps({"error": {
                        "type": "version_conflict_engine_exception",
                        "reason": f"[{name}]: version conflict, document already exists"},
                        "status": 409}).encode()
                policy = _json(body)["policy"]
                policy["policy_id"] = name
                for t in policy.get("ism_template", []):
                    t["last_updated_time"] = 1796315407216
                seq = (cur["_seq_no"] + 1) if cur else 0
                self.policies[name] = {"_seq_no": seq, "_primary_term": 1, "policy": policy}
                return 201 if cur is None else 200, json.dumps(
                    {"_id": name, **self.policies[name]}).encode()
        if p.startswith("/_plugins/_ism/add/") and method == "POST":
            index = p.rsplit("/", 1)[1]
            if index in self.managed:
                return 200, json.dumps({"updated_indices": 0, "failures": True,
                                        "failed_indices": [{"index_name": index,
                                                            "reason": "This index already has"
                                                                      " a policy, use the"
                                                                      " update policy API"}]}
                                       ).encode()
            self.managed[index] = _json(body)["policy_id"]
            return 200, b'{"updated_indices":1,"failures":false,"failed_indices":[]}'
        return None

    def ism_covers(self, index: str) -> str | None:
        """The policy whose ism_template would attach to a new index of this name."""
        for name, cur in self.policies.items():
            for t in cur["policy"].get("ism_template", []):
                if any(fnmatch(index, pat) for pat in t["index_patterns"]):
                    return name
        return None

    def close(self) -> None:
        self.proxy.close()


def make_settings(url: str, tmp_path, backend: str = "opensearch", **es) -> Settings:
    return Settings.model_validate({
        "state": {"dir": str(tmp_path)},
        "elasticsearch": {"url": url, "backend": backend, "initial_backoff": 0.05,
                          "timeout": 5, **es},
    })


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def test_drain_without_setup_installs_ilm_policy_with_the_templates(osmem, tmp_path, store,
                                                                     sinkdata):
    """The first delivery, `es setup` never run: the ILM policy goes in before the
    templates that name it, and the indices the first write creates carry the policy."""
    front = ElasticsearchFront(osmem)
    try:
        settings = make_settings(front.url, tmp_path, backend="elasticsearch", retention="90d")
        for f in sinkdata.a_month_of_findings(sinkdata.people(10), ["pastebin"], 4):
            record_finding(store, f, settings)
        report = spool.drain(store, settings)
        assert report.delivered == 8 and report.pending == 0, report
        assert list(front.policies) == ["leaksentry-retention"] and front.dangling == []
        puts = [p for m, p in front.log if m == "PUT" and "_bulk" not in p]
        assert puts.index("/_ilm/policy/leaksentry-retention") < puts.index(
            "/_index_template/leaksentry-hits")
        assert front.template_policy == {"leaksentry-hits": "leaksentry-retention",
                                         "leaksentry-documents": "leaksentry-retention"}
        delete = front.policies["leaksentry-retention"]["policy"]["phases"]["delete"]
        assert delete["min_age"] == "2160h"
        cluster = connect(settings.elasticsearch)
        indices = sorted(cluster.request("GET", "/_alias/leaksentry-hits")) + sorted(
            cluster.request("GET", "/_alias/leaksentry-documents"))
        assert indices and all(front.policy_of(i) == "leaksentry-retention" for i in indices)
        got = cluster.request("GET", f"/{indices[0]}/_settings")
        assert got[indices[0]]["settings"]["index"]["lifecycle"]["name"] == "leaksentry-retention"

        # installed: the next drain only looks (no second PUT)
        def installs() -> int:
            return sum(1 for m, p in front.log if m == "PUT" and "_bulk" not in p)

        before = installs()
        record_finding(store, sinkdata.hit_finding(sinkdata.people(2),
                                                   url="https://b.example/1"), settings)
        assert spool.drain(store, settings).delivered == 2
        assert installs() == before

        # es check compares content: ok now; an edited policy or template is outdated
        check = setup.check(cluster)
        assert check.ok and check.retention == "ilm" and check.policy == "ok", check.problems
        front.policies["leaksentry-retention"]["policy"]["phases"]["delete"]["min_age"] = "1h"
        front.template_policy["leaksentry-documents"] = "someone-elses"
        check = setup.check(cluster)
        assert check.policy == "outdated" and check.templates["leaksentry-documents"] == \
            "outdated" and not check.ok
        assert any("min_age: 1h (expected 2160h)" in p for p in check.problems)
        assert any("lifecycle.name: someone-elses" in p for p in check.problems)
        setup.setup(cluster)
        assert setup.check(cluster).ok
    finally:
        front.close()


def test_ism_policy_installed_with_templates_and_attached_to_older_indices(
        osmem, tmp_path, store, sinkdata):
    """OpenSearch: the ISM policy's ism_template covers both index patterns and goes in
    before the templates; indices that existed before the policy (created by an older
    version, or by hand) are attached with the add API by `es setup`."""
    osmem.request("PUT", "/leaksentry-hits-2026.10")  # older than any policy
    front = OpenSearchIsmFront(osmem)
    try:
        settings = make_settings(front.url, tmp_path)
        record_finding(store, sinkdata.hit_finding(sinkdata.people(3),
                                                   url="https://c.example/1"), settings)
        assert spool.drain(store, settings).delivered == 2
        assert list(front.policies) == ["leaksentry-retention"]
        order = [p for m, p in front.log if m == "PUT"]
        assert order.index("/_plugins/_ism/policies/leaksentry-retention") < order.index(
            "/_index_template/leaksentry-hits")
        cluster = connect(settings.elasticsearch)
        for a in ("leaksentry-hits", "leaksentry-documents"):
            for index in cluster.request("GET", f"/_alias/{a}"):
                assert front.ism_covers(index) == "leaksentry-retention"
        # a retention change: es setup updates the policy with seq_no/primary_term
        settings2 = make_settings(front.url, tmp_path, retention="30d")
        cluster2 = connect(settings2.elasticsearch)
        assert setup.check(cluster2).policy == "outdated"
        osmem.request("POST", "/_aliases", {"actions": [{"add": {
            "index": "leaksentry-hits-2026.10", "alias": "leaksentry-hits"}}]})
        report = setup.setup(cluster2)
        assert report.retention == "ism"
        assert front.policies["leaksentry-retention"]["_seq_no"] == 1
        states = front.policies["leaksentry-retention"]["policy"]["states"]
        assert states[0]["transitions"][0]["conditions"]["min_index_age"] == "720h"
        assert front.managed.get("leaksentry-hits-2026.10") == "leaksentry-retention"
        assert setup.check(cluster2).ok
    finally:
        front.close()


def test_without_ilm_or_ism_the_policy_part_is_skipped_with_a_note(osmem, tmp_path, store,
                                                                   sinkdata):
    settings = make_settings(osmem.url, tmp_path)
    record_finding(store, sinkdata.hit_finding(sinkdata.people(2), url="https://d.example/1"),
                   settings)
    assert spool.drain(store, settings).delivered == 2  # templates installed by the drain
    cluster = connect(settings.elasticsearch)
    check = setup.check(cluster)
    assert check.ok and check.retention == "none" and check.policy == "unsupported"
    assert any("ISM is not supported by this server" in n and "drop monthly indices" in n
               for n in check.notes)
    report = setup.setup(cluster)
    assert report.retention == "none" and any("ISM is not supported" in n for n in report.notes)


def test_replicas_configurable_and_checked_against_the_nodes(osmem, tmp_path):
    cluster = connect(make_settings(osmem.url, tmp_path).elasticsearch)
    setup.setup(cluster)
    t = cluster.request("GET", "/_index_template/leaksentry-hits")["index_templates"][0]
    assert t["index_template"]["template"]["settings"]["index"]["number_of_replicas"] == "1"
    check = setup.check(cluster)  # osmem is one node: a replica cannot be placed
    assert check.ok and any("number_of_replicas = 0 on a single-node" in n for n in check.notes)

    single = connect(make_settings(osmem.url, tmp_path, number_of_replicas=0).elasticsearch)
    check = setup.check(single)
    assert check.templates["leaksentry-hits"] == "outdated" and not check.ok
    assert any("number_of_replicas: 1 (expected 0)" in p for p in check.problems)
    setup.setup(single)
    check = setup.check(single)
    assert check.ok and not any("replica" in n for n in check.notes)
    (index,) = single.request("GET", "/_alias/leaksentry-hits")
    got = single.request("GET", f"/{index}/_settings")[index]["settings"]["index"]
    assert got["number_of_replicas"] == "0"  # the existing month's index follows


@pytest.mark.parametrize("distribution,version,ok", [
    ("opensearch", "2.11.1", False), ("opensearch", "2.15.0", True),
    ("elasticsearch", "7.8.1", False), ("elasticsearch", "7.9.0", True),
])
def test_setup_checks_the_server_version_for_wildcard(osmem, tmp_path, distribution, version,
                                                      ok):
    info = {"version": {"number": version, "distribution": distribution}}
    if distribution == "elasticsearch":
        info["version"].pop("distribution")

    def old_server(method, path, body, headers):
        return (200, json.dumps(info).encode()) if path == "/" else None

    proxy = CompatProxy(osmem, intercept=old_server)
    try:
        cluster = connect(make_settings(proxy.url, tmp_path).elasticsearch)
        if ok:
            setup.setup(cluster)
            return
        name = "OpenSearch" if distribution == "opensearch" else "Elasticsearch"
        with pytest.raises(Exception, match=rf"{name} {version} has no `wildcard` field type"
                                            r".*Elasticsearch >= 7\.9 or OpenSearch >= 2\.15"):
            setup.setup(cluster)
        assert not osmem.request("GET", "/_index_template").get("index_templates")
        assert any("has no `wildcard`" in p for p in setup.check(cluster).problems)
    finally:
        proxy.close()


def test_critical_hit_delivered_after_an_outage_still_fires_the_rule(osmem, tmp_path, store,
                                                                     sinkdata):
    """The shipped Kibana rule, run as Kibana's .es-query runs it (its esQuery AND a range
    on timeField over the window), finds a critical hit first seen an hour before the
    cluster came back; on @timestamp it would not. A re-sighting does not fire again."""
    from kibana.install import load_rule

    settings = make_settings(osmem.url, tmp_path)
    cluster = connect(settings.elasticsearch)
    setup.setup(cluster)
    ps = sinkdata.people(120)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    crit = sinkdata.hit_finding(ps[:110], url="https://leak.example/big", when=an_hour_ago)
    assert crit.result.severity == "critical"
    osmem.stop()
    stored = record_finding(store, crit, settings)
    assert spool.drain(store, settings).unreachable
    osmem.restart()
    assert spool.drain(store, settings).delivered == 2

    rule = load_rule()
    p = rule["params"]

    def rule_hits(time_field: str) -> int:
        window = f"now-{p['timeWindowSize']}{p['timeWindowUnit']}"
        query = {"query": {"bool": {"filter": [
            json.loads(p["esQuery"])["query"],
            {"range": {time_field: {"gte": window, "lte": "now"}}}]}}}
        return cluster.request("POST", f"/{p['index'][0]}/_search", query)["hits"]["total"][
            "value"]

    assert p["timeField"] == "event.ingested"
    assert rule_hits("event.ingested") == 1
    assert rule_hits("@timestamp") == 0  # what the old rule would have seen

    (hit,) = cluster.request("POST", "/leaksentry-hits/_search", {})["hits"]["hits"]
    src = hit["_source"]
    assert src["ecs"]["version"] == ECS_VERSION and src["leaksentry"]["sightings"] == 1
    ingested = src["event"]["ingested"]
    assert ingested > src["@timestamp"]

    # seen again now: sightings and last_seen follow, event.ingested does not move
    again = replace(crit, fetched_at=datetime.now(UTC))
    assert record_finding(store, again, settings).new is False and stored.new
    r = spool.drain(store, settings)
    assert r.delivered == 2 and r.pending == 0  # the update + a coverage document
    (hit,) = cluster.request("POST", "/leaksentry-hits/_search", {})["hits"]["hits"]
    src = hit["_source"]
    assert src["leaksentry"]["sightings"] == 2
    assert src["leaksentry"]["last_seen"] > src["@timestamp"]
    assert src["event"]["ingested"] == ingested
    docs = cluster.request("POST", "/leaksentry-documents/_search", {})["hits"]["hits"]
    assert len(docs) == 2 and all(d["_source"]["ecs"]["version"] == ECS_VERSION for d in docs)


def test_resighting_updates_coalesce_and_wait_for_their_create(osmem, tmp_path, store,
                                                               sinkdata):
    """Three sightings before any delivery: one create and one update wait (the newest
    values); delivered in order, the document ends with sightings = 3."""
    settings = make_settings(osmem.url, tmp_path)
    f = sinkdata.hit_finding(sinkdata.people(4), url="https://e.example/1")
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(3):
        record_finding(store, replace(f, fetched_at=t0 + timedelta(minutes=i)), settings)
    ops = [r[0] for r in store.conn.execute(
        "SELECT op FROM es_spool WHERE kind = 'hits' ORDER BY id")]
    assert ops == ["create", "update"]
    assert spool.drain(store, settings).pending == 0
    cluster = connect(settings.elasticsearch)
    (hit,) = cluster.request("POST", "/leaksentry-hits/_search", {})["hits"]["hits"]
    assert hit["_source"]["leaksentry"]["sightings"] == 3
    # the cluster lost the document (restart): the next re-sighting's update is dropped,
    # counted and logged, not retried forever
    osmem.restart()
    record_finding(store, replace(f, fetched_at=datetime.now(UTC)), settings)
    r = spool.drain(store, settings)
    assert r.missing == 1 and r.pending == 0 and r.rejected == 0
