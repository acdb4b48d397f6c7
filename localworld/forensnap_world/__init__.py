"""forensnap's local AWS world: the pinned moto server plus the extension that closes its gaps.

Modules, each owning one job:

* ``clock``     -- the world clock (real UTC plus an offset tests can advance).
* ``wire``      -- parsing requests (service, operation, account) and writing AWS-shaped errors.
* ``faults``    -- run-time fault injection rules (throttling, 5xx, drops, latency, corruption).
* ``volumes``   -- which bytes each volume and snapshot holds (seeded raw images).
* ``ebs``       -- the EBS direct APIs (ListSnapshotBlocks, GetSnapshotBlock) over those bytes.
* ``patches``   -- fixes to moto's STS, EC2, KMS and S3 behaviour (see moto-fidelity.md).
* ``s3checks``  -- S3 wire-level checks: checksums, Object Lock on multipart, retention rules.
* ``queues``    -- which SQS queue a request names; the ``duplicate`` delivery fault.
* ``eventbridge`` -- the findings intake: cross-account PutEvents, the delivered envelope, and
  deliveries to SQS authorised by the queue and key policies.
* ``cloudtrail`` -- CloudTrail's event history: every management call served, plus seeded
  activity; LookupEvents (paged, throttled), the other CloudTrail calls the world answers.
* ``trails``    -- trails delivering log files and signed digest files to S3 (log file
  validation), ListPublicKeys, GetTrailStatus, tampering for tests.
* ``ssm``       -- SSM Run Command for memory capture: managed instances, a stand-in agent that
  runs forensnap's document, DescribeInstanceInformation, the invocations, agent faults.
* ``avml``      -- the world's pinned "AVML build": a stand-in writing a deterministic LiME image.
* ``server``    -- the WSGI stack and the threaded HTTP server; the ``/_forensnap`` control API.
* ``seed``      -- builds a world from a TOML file through the public APIs (boto3).
* ``selftest``  -- proves the patched internals still behave; fails loudly when moto changes.
"""

MOTO_VERSION = "5.2.5"
"""The exact moto version the patches were written against (see requirements.txt)."""

BLOCK_SIZE = 524_288
"""EBS direct API block size: fixed by AWS at 512 KiB."""
