#!/usr/bin/env python3
"""Reference S3 SigV4 signatures from botocore's S3SigV4Auth for SigV4Tests.swift.

Re-run with `python3 Tests/CetiKitTests/botocore_reference.py` and paste the printed values into
SigV4Tests.swift (the `BotocoreCase` table). The inputs here and there must stay identical.
Requests are built the way botocore's REST serializer builds them: the path quoted with
safe='/~' (S3 is not normalized or double-encoded) and query parameters passed decoded.
"""
import datetime
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLETOKEN+/="
REGION = "eu-west-1"
TIMESTAMP = datetime.datetime(2024, 5, 17, 9, 30, 15, tzinfo=datetime.timezone.utc)

KEY = "dir one/sub+dir/a b+c=d&e%f~g!h'i é鯨.dat"

CASES = [
    dict(
        name="listObjectsV2",
        method="GET",
        url="https://my-bucket.s3.eu-west-1.amazonaws.com/",
        params=[("list-type", "2"), ("prefix", "a b")],
        headers={},
        body=b"",
    ),
    dict(
        name="putSpecialKey",
        method="PUT",
        url="http://127.0.0.1:9000/my-bucket/" + quote(KEY, safe="/~"),
        params=[],
        # User-Agent and Expect are sent but botocore does not sign them.
        headers={
            "Content-MD5": "b1kCrCNwJL3QwXbLkwY9xA==",
            "Content-Type": "application/octet-stream",
            "User-Agent": "ceti/1.0",
            "Expect": "100-continue",
        },
        body=b"hello world\n",
    ),
    dict(
        name="putWithSessionToken",
        method="PUT",
        url="https://my-bucket.s3.eu-west-1.amazonaws.com/logs/2024/05/17.txt",
        params=[],
        headers={"Content-MD5": "XUFAKrxLKna5cZ2REBfFkg=="},
        body=b"hello",
        token=SESSION_TOKEN,
    ),
    dict(
        name="uploadPart",
        method="PUT",
        url="https://my-bucket.s3.eu-west-1.amazonaws.com/big/file.bin",
        params=[("partNumber", "3"), ("uploadId", "abc/def+=")],
        headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="},
        body=b"",
    ),
]


def sign(case):
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, case.get("token"))
    request = AWSRequest(
        method=case["method"],
        url=case["url"],
        params=case["params"],
        headers=dict(case["headers"]),
        data=case["body"],
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=TIMESTAMP):
        auth = botocore.auth.S3SigV4Auth(credentials, "s3", REGION)
        auth.add_auth(request)
    return auth, request


if __name__ == "__main__":
    print(f"# botocore {botocore.__version__}")
    for case in CASES:
        auth, request = sign(case)
        print(f"{case['name']}:")
        print(f"  path: {urlsplit(request.url).path}")
        print(f"  x-amz-content-sha256: {request.headers['X-Amz-Content-SHA256']}")
        print(f"  Authorization: {request.headers['Authorization']}")
        # Re-derive the canonical request without the Authorization header just added.
        del request.headers["Authorization"]
        canonical = auth.canonical_request(request)
        print("  canonical request:\n    " + canonical.replace("\n", "\n    "))
