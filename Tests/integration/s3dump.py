"""Dump a bucket with boto3 (an independent client): s3dump.py ENDPOINT BUCKET OUTDIR

Writes OUTDIR/index.json ({key: {size, etag, last_modified, metadata}}) and every object's
bytes under OUTDIR/objects/<key>. Credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
Used where the S3 server is reachable only from inside a network namespace (the hub)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
from botocore.config import Config


def main() -> None:
    endpoint, bucket, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                        config=Config(s3={"addressing_style": "path"}))
    index = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []) or []:
            key = o["Key"]
            got = s3.get_object(Bucket=bucket, Key=key)
            target = out / "objects" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(got["Body"].read())
            index[key] = {"size": o["Size"], "etag": o["ETag"].strip('"'),
                          "last_modified": o["LastModified"].timestamp(), "metadata": got.get("Metadata", {})}
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) or []
    (out / "index.json").write_text(json.dumps({"objects": index, "open_uploads": len(uploads)}, indent=1))


if __name__ == "__main__":
    main()
