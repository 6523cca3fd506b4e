"""``bucket`` sources against real and simulated storage listings.

S3: moto's real S3 server (``moto.server.ThreadedMotoServer``, moto[server]) with a
public-read bucket populated by boto3, listing pagination forced with ``max_keys``.
Azure: servers/azure_blob.py, a simulator of the Blob service's List Blobs / Get Blob
REST operations (Microsoft's "List Blobs" reference; see its docstring).
Crawls run as subprocesses (``leaksentry crawl``).
"""

from __future__ import annotations

import urllib.request

import pytest
from servers.azure_blob import AzureBlobService

from crawler.spiders.bucket import NotAListing, list_url, object_url, parse_listing
from leaksentry.synth import patients

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")


@pytest.fixture
def s3():
    """A fresh S3 for each test: moto keeps its buckets in process-wide state that a new
    server shares, so the state is reset when the test ends (``/moto-api/reset``) and the
    next test (or the other store engine's run of this one) starts from no buckets."""
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    yield endpoint, client
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"),
                           timeout=10).close()
    srv.stop()


def _csv(seed: int, n: int = 3) -> bytes:
    rows = ["name,hkid,procedure"] + [f"{p.name},{p.hkid},{p.procedure}"
                                      for p in patients(n, seed=seed)]
    return ("\n".join(rows) + "\n").encode()


def _bucket_source(url: str, **over: object) -> dict:
    src = {"name": "bkt", "kind": "bucket", "url": url, "allow_private": True, "max_keys": 3}
    src.update(over)
    return src


def test_s3_listing_is_paginated_and_only_new_or_changed_keys_are_fetched(s3, crawl_ws):
    endpoint, client = s3
    client.create_bucket(Bucket="contractor-exports", ACL="public-read")
    keys = [f"exports/2026/batch-{i:02d}.csv" for i in range(7)] + ["readme.txt"]
    for i, key in enumerate(keys):
        client.put_object(Bucket="contractor-exports", Key=key, Body=_csv(100 + i),
                          ACL="public-read")
    ws = crawl_ws
    ws.write([_bucket_source(f"{endpoint}/contractor-exports")])

    first = ws.crawl("bkt")
    assert first.run is not None, first.output[-2000:]
    assert first.run["outcome"] == "ok", first.output[-2000:]
    assert first.run["discovered"] == 8 and first.run["fetched"] == 8 and first.run["new"] == 8
    # 8 keys with max_keys = 3: three listing pages, eight objects
    assert first.run["statuses"]["200"] == 3 + 8
    docs = {d["item_id"]: d for d in ws.docs()}
    assert sorted(docs) == sorted(keys)
    assert docs["readme.txt"]["url"] == f"{endpoint}/contractor-exports/readme.txt"
    assert docs["exports/2026/batch-03.csv"]["filename"] == "batch-03.csv"
    seen = ws.seen("bkt")
    etag = client.head_object(Bucket="contractor-exports", Key="readme.txt")["ETag"].strip('"')
    assert seen["readme.txt"]["version"] == etag and seen["readme.txt"]["status"] == "done"

    second = ws.crawl("bkt")
    assert second.run["outcome"] == "ok"
    assert second.run["discovered"] == 8 and second.run["fetched"] == 0
    assert len(ws.docs()) == 8

    # one object overwritten (new ETag), one added: exactly those two are processed
    client.put_object(Bucket="contractor-exports", Key="exports/2026/batch-03.csv",
                      Body=_csv(999), ACL="public-read")
    client.put_object(Bucket="contractor-exports", Key="late.csv", Body=_csv(555),
                      ACL="public-read")
    third = ws.crawl("bkt")
    assert third.run["fetched"] == 2 and third.run["new"] == 2, third.output[-2000:]
    assert sorted(d["item_id"] for d in ws.docs()[8:]) == ["exports/2026/batch-03.csv",
                                                           "late.csv"]


def test_s3_prefix_limits_the_listing(s3, crawl_ws):
    endpoint, client = s3
    client.create_bucket(Bucket="bucket-two", ACL="public-read")
    for key in ("keep/a.csv", "keep/b.csv", "other/c.csv"):
        client.put_object(Bucket="bucket-two", Key=key, Body=_csv(7), ACL="public-read")
    crawl_ws.write([_bucket_source(f"{endpoint}/bucket-two", prefix="keep/")])
    res = crawl_ws.crawl("bkt")
    assert res.run["outcome"] == "ok", res.output[-2000:]
    assert sorted(d["item_id"] for d in crawl_ws.docs()) == ["keep/a.csv", "keep/b.csv"]


def test_missing_bucket_is_a_recorded_source_error(s3, crawl_ws):
    endpoint, _ = s3
    crawl_ws.write([_bucket_source(f"{endpoint}/no-such-bucket", retry_max=0)])
    res = crawl_ws.crawl("bkt")
    assert res.run is not None, res.output[-2000:]
    assert res.run["outcome"] == "error"
    assert "no-such-bucket" in res.run["error"]
    assert crawl_ws.runs("bkt")[-1]["outcome"] == "error"


@pytest.fixture
def azure():
    svc = AzureBlobService().start()
    yield svc
    svc.stop()


def test_azure_container_listing_with_next_marker(azure, crawl_ws):
    azure.create_container("public-exports", public=True)
    names = [f"ward-{i}/list.csv" for i in range(5)]
    for i, name in enumerate(names):
        azure.put("public-exports", name, _csv(200 + i), "text/csv")
    ws = crawl_ws
    ws.write([_bucket_source(f"{azure.url}/public-exports", flavor="azure", max_keys=2)])

    first = ws.crawl("bkt")
    assert first.run["outcome"] == "ok", first.output[-2000:]
    assert first.run["fetched"] == 5 and first.run["new"] == 5
    assert azure.hits["list"] == 3  # 5 blobs, maxresults = 2
    assert sorted(d["item_id"] for d in ws.docs()) == names

    second = ws.crawl("bkt")
    assert second.run["fetched"] == 0 and second.run["discovered"] == 5

    azure.put("public-exports", names[2], _csv(777), "text/csv")  # new ETag
    third = ws.crawl("bkt")
    assert third.run["fetched"] == 1 and third.run["new"] == 1
    assert ws.docs()[-1]["item_id"] == names[2]
    assert azure.hits[f"get:{names[2]}"] == 2 and azure.hits[f"get:{names[0]}"] == 1


def test_azure_private_container_is_a_recorded_source_error(azure, crawl_ws):
    azure.create_container("private", public=False)
    azure.put("private", "x.csv", b"a,b\n")
    crawl_ws.write([_bucket_source(f"{azure.url}/private", flavor="azure", retry_max=0)])
    res = crawl_ws.crawl("bkt")
    assert res.run["outcome"] == "error", res.output[-2000:]
    assert azure.hits["get:x.csv"] == 0


def test_azure_private_container_read_with_a_sas_token(azure, crawl_ws):
    azure.create_container("leaked-sas", public=False)
    for name in ("a.csv", "b/c.csv", "d.csv"):
        azure.put("leaked-sas", name, _csv(9), "text/csv")
    sas = azure.container_sas("leaked-sas")
    crawl_ws.write([_bucket_source(f"{azure.url}/leaked-sas?{sas}", flavor="azure",
                                   max_keys=2)])
    res = crawl_ws.crawl("bkt")
    assert res.run["outcome"] == "ok", res.output[-2000:]
    assert sorted(d["item_id"] for d in crawl_ws.docs()) == ["a.csv", "b/c.csv", "d.csv"]
    assert azure.hits["list"] == 2 and azure.hits["get:b/c.csv"] == 1


# -- the listing parser ------------------------------------------------------------------

def test_parse_listing_reads_s3_v2_v1_and_azure_pages():
    v2 = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
          b'2006-03-01/"><IsTruncated>true</IsTruncated><Contents><Key>a b.csv</Key>'
          b'<LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e1"</ETag>'
          b"<Size>5</Size></Contents><NextContinuationToken>tok</NextContinuationToken>"
          b"</ListBucketResult>")
    page = parse_listing(v2)
    assert page.entries[0].key == "a b.csv" and page.entries[0].version == "e1"
    assert page.continuation_token == "tok" and page.next_marker is None
    v1 = (b"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>k1</Key>"
          b"<LastModified>2026-01-01T00:00:00Z</LastModified><Size>3</Size></Contents>"
          b"</ListBucketResult>")
    page = parse_listing(v1)
    assert page.next_marker == "k1"  # V1 without NextMarker: continue after the last key
    assert page.entries[0].version == "2026-01-01T00:00:00Z/3"
    done = parse_listing(v1.replace(b">true<", b">false<"))
    assert done.next_marker is None and done.continuation_token is None
    az = ("\ufeff<?xml version='1.0' encoding='utf-8'?><EnumerationResults ContainerName='c'>"
          "<Blobs><Blob><Name>x.csv</Name><Properties><Last-Modified>Mon, 02 Nov 2026 "
          "10:00:00 GMT</Last-Modified><Etag>0x8D1</Etag><Content-Length>9</Content-Length>"
          "</Properties></Blob></Blobs><NextMarker>m2</NextMarker></EnumerationResults>"
          ).encode()
    page = parse_listing(az)
    assert page.kind == "azure" and page.entries[0].version == "0x8D1"
    assert page.entries[0].size == 9 and page.next_marker == "m2"


@pytest.mark.parametrize("body", [
    b"<html><body>Access denied</body></html>",
    b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>no</Message></Error>",
    b"<ListBucketResult><Contents><Key>a</Key>",  # truncated
    b"",
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ListBucketResult>'
    b"<Contents><Key>&e;</Key></Contents></ListBucketResult>",
])
def test_parse_listing_rejects_what_is_not_a_listing(body: bytes):
    try:
        page = parse_listing(body)
    except NotAListing as exc:
        assert str(exc)  # a one-line reason
        return
    # an external entity is never resolved: no key carries the file's content
    assert all("root:" not in e.key for e in page.entries)


def test_list_and_object_urls():
    assert list_url("http://h/b", "s3", max_keys=3, token="t") == \
        "http://h/b/?list-type=2&max-keys=3&continuation-token=t"
    assert list_url("http://h/b/", "gcs", max_keys=5, prefix="p/", marker="m") == \
        "http://h/b/?max-keys=5&prefix=p%2F&marker=m"
    assert list_url("http://h/c", "azure", max_keys=2, marker="x") == \
        "http://h/c?restype=container&comp=list&maxresults=2&marker=x"
    assert object_url("http://h/b", "dir/a b#1.csv") == "http://h/b/dir/a%20b%231.csv"
    # a SAS token travels with the listing and every blob request
    sas = "https://acct.blob.core.windows.net/c?sv=2022-11-02&sr=c&sp=rl&sig=a%2Bb%3D"
    assert list_url(sas, "azure", max_keys=2) == (
        "https://acct.blob.core.windows.net/c?sv=2022-11-02&sr=c&sp=rl&sig=a%2Bb%3D"
        "&restype=container&comp=list&maxresults=2")
    assert object_url(sas, "x.csv") == \
        "https://acct.blob.core.windows.net/c/x.csv?sv=2022-11-02&sr=c&sp=rl&sig=a%2Bb%3D"


def test_v1_marker_pagination_gcs_flavor_against_s3_server(s3, crawl_ws):
    """``flavor = "gcs"`` speaks the V1 listing (``marker``/``NextMarker``), which the
    Cloud Storage XML API and S3 share; moto's S3 server answers it."""
    endpoint, client = s3
    client.create_bucket(Bucket="gcs-like", ACL="public-read")
    keys = [f"k{i}.csv" for i in range(5)]
    for key in keys:
        client.put_object(Bucket="gcs-like", Key=key, Body=_csv(3), ACL="public-read")
    crawl_ws.write([_bucket_source(f"{endpoint}/gcs-like", flavor="gcs", max_keys=2)])
    res = crawl_ws.crawl("bkt")
    assert res.run["outcome"] == "ok", res.output[-2000:]
    assert sorted(d["item_id"] for d in crawl_ws.docs()) == keys
    assert res.run["statuses"]["200"] == 3 + 5


def test_s3_bucket_split_over_two_processes_fetches_each_key_once(s3, crawl_ws):
    """``processes = 2`` (crawler/shard.py) against moto's S3 server: both shards page
    through the listing, each fetches only its keys, one run is recorded."""
    endpoint, client = s3
    client.create_bucket(Bucket="big-exports", ACL="public-read")
    keys = [f"exports/part-{i:03d}.csv" for i in range(25)]
    for i, key in enumerate(keys):
        client.put_object(Bucket="big-exports", Key=key, Body=_csv(300 + i, 1),
                          ACL="public-read")
    crawl_ws.write([_bucket_source(f"{endpoint}/big-exports", max_keys=10, processes=2)])
    r = crawl_ws.crawl("bkt")
    assert r.run is not None and r.run["outcome"] == "ok", r.output[-2000:]
    fetched = [d["item_id"] for d in crawl_ws.docs()]
    assert sorted(fetched) == keys  # every key exactly once across the shards
    assert (r.run["discovered"], r.run["new"]) == (25, 25)
    assert len(crawl_ws.runs("bkt")) == 1
    again = crawl_ws.crawl("bkt")
    assert (again.run["fetched"], again.run["new"]) == (0, 0), again.output[-2000:]
