#!/usr/bin/env python3
"""Fixes two wire-format bugs of moto 5.2.5 that the Rust AWS SDK (stricter than boto3) trips on.

Applied by scripts/setup after `pip install moto[server]==5.2.5`; idempotent; fails loudly if
moto's code is not what it expects, so an upgrade cannot silently skip it.

1. S3 (rest-xml) outputs without a payload member are serialised under `<OperationNameResponse>`.
   AWS names the root after the output shape's Smithy `@xmlName` (GetBucketVersioning answers
   `<VersioningConfiguration>`), and the Rust SDK checks the root element. botocore's JSON models
   carry no such name, so moto cannot know it: the table below supplies it.
2. CodePipeline (aws-json) pipeline metadata `created`/`updated` are ISO-8601 strings; AWS sends
   epoch seconds, and the Rust SDK refuses strings for timestamps.
3. ECR `PutImageScanningConfiguration` with `{}` is ignored. The Rust SDK leaves a `false`
   boolean out of the request (its default), which AWS reads as `scanOnPush: false`.
4. S3 `CreateBucket` ignores `CreateBucketConfiguration.Tags`. AWS tags a general purpose bucket
   in the same call (since 2025; it needs `s3:TagResource`), which is how slipway creates a
   bucket that is never, even for a moment, without its ownership tags.
5. S3 `GetBucketNotificationConfiguration` leaves out `EventBridgeConfiguration`, which moto
   stores (and acts on: it sends the bucket's events to EventBridge). AWS returns it; without it
   slipway would see the setting it just turned on as off, forever.
6. An EventBridge rule's CodePipeline target is not invoked (moto delivers to SQS, SNS, Lambda,
   logs and buses only). AWS starts the pipeline; the patch calls moto's own
   `start_pipeline_execution`, so a test can see that a write to the source object starts its
   pipeline. This fills a gap rather than fixing a wrong answer; it is the one patch of that sort.
7. Patch 1's table, for `GetBucketNotificationConfiguration` (answered `<NotificationConfiguration>`
   by AWS; moto names the root after the older operation name, `GetBucketNotification`). A patch of
   its own so that a .venv patched before it keeps applying cleanly.
8. CodePipeline `ListPipelineExecutions` sends `startTime`/`lastUpdateTime` as ISO-8601 strings,
   like patch 2's metadata; AWS sends epoch seconds.
9. The Resource Groups Tagging API (`GetResources`) returns EventBridge event buses but not their
   rules, which AWS returns (`events:rule`). slipway reads ownership tags for a whole pass through
   it; without rules there, moto would show two reads per pipeline that AWS does not cost. ECR,
   CodePipeline, CodeBuild and CloudTrail are missing from moto's Tagging API too, and are left so:
   slipway reads their tags one by one, the fallback a real account also takes for a resource the
   API has not indexed yet.
"""
import pathlib
import sys

import moto

ROOT = pathlib.Path(moto.__file__).parent
MARK = "# patched by slipway scripts/patch-moto.py"

PATCHES = [
    (
        ROOT / "core" / "serialize.py",
        """        else:
            result_key = f"{self.operation_model.name}Response"
""",
        """        else:
            result_key = f"{self.operation_model.name}Response"  %s
            if self.operation_model.metadata.get("protocol") == "rest-xml":
                result_key = {
                    "GetBucketVersioning": "VersioningConfiguration",
                    "GetBucketTagging": "Tagging",
                    "GetObjectTagging": "Tagging",
                    "ListObjectVersions": "ListVersionsResult",
                    "ListObjects": "ListBucketResult",
                    "ListObjectsV2": "ListBucketResult",
                    "ListBuckets": "ListAllMyBucketsResult",
                    "DeleteObjects": "DeleteResult",
                    "GetBucketLocation": "LocationConstraint",
                }.get(self.operation_model.name, result_key)
"""
        % MARK,
    ),
    (
        ROOT / "codepipeline" / "models.py",
        """            "created": iso_8601_datetime_with_milliseconds(self._created),
            "updated": iso_8601_datetime_with_milliseconds(self._updated),
""",
        """            "created": self._created.timestamp(),  %s
            "updated": self._updated.timestamp(),
"""
        % MARK,
    ),
    (
        ROOT / "codepipeline" / "models.py",
        """        codepipeline._updated = utcnow()
""",
        """        codepipeline._updated = utcnow()
        codepipeline.metadata["updated"] = codepipeline._updated.timestamp()  %s
"""
        % MARK,
    ),
]


PATCHES.append(
    (
        ROOT / "ecr" / "models.py",
        """        if image_scanning_configuration:
            self.image_scanning_configuration = image_scanning_configuration
""",
        """        if image_scanning_configuration is not None:  %s
            self.image_scanning_configuration = {"scanOnPush": bool(image_scanning_configuration.get("scanOnPush", False))}
"""
        % MARK,
    )
)

PATCHES.append(
    (
        ROOT / "s3" / "responses.py",
        """            ownership_rule = request.headers.get("x-amz-object-ownership")
            if ownership_rule:
                new_bucket.ownership_rule = ownership_rule
""",
        """            ownership_rule = request.headers.get("x-amz-object-ownership")
            if ownership_rule:
                new_bucket.ownership_rule = ownership_rule
            create_tags = ((xmltodict.parse(self.body) if self.body else {}).get("CreateBucketConfiguration") or {}).get("Tags")  %s
            if create_tags and create_tags.get("Tag"):
                tag_list = create_tags["Tag"] if isinstance(create_tags["Tag"], list) else [create_tags["Tag"]]
                self.backend.put_bucket_tagging(bucket_name, {t["Key"]: t.get("Value") or "" for t in tag_list})
"""
        % MARK,
    )
)

PATCHES.append(
    (
        ROOT / "s3" / "responses.py",
        """            "LambdaFunctionConfigurations": [
                _build_config(cf, "LambdaFunctionArn")
                for cf in notification_configuration.cloud_function
            ],
        }
""",
        """            "LambdaFunctionConfigurations": [
                _build_config(cf, "LambdaFunctionArn")
                for cf in notification_configuration.cloud_function
            ],
        }
        if notification_configuration.event_bridge is not None:  %s
            result["EventBridgeConfiguration"] = {}
"""
        % MARK,
    )
)

PATCHES.append(
    (
        ROOT / "events" / "models.py",
        """            elif arn.service == "sqs":
                group_id = target.get("SqsParameters", {}).get("MessageGroupId")
""",
        """            elif arn.service == "codepipeline":  %s
                from moto.codepipeline.models import codepipeline_backends

                codepipeline_backends[arn.account][arn.region].start_pipeline_execution(arn.resource_id, None)
            elif arn.service == "sqs":
                group_id = target.get("SqsParameters", {}).get("MessageGroupId")
"""
        % MARK,
    )
)


PATCHES.append(
    (
        ROOT / "core" / "serialize.py",
        """                }.get(self.operation_model.name, result_key)
""",
        """                }.get(self.operation_model.name, result_key)
                result_key = {  %s
                    "GetBucketNotification": "NotificationConfiguration",
                    "GetBucketNotificationConfiguration": "NotificationConfiguration",
                }.get(self.operation_model.name, result_key)
"""
        % MARK,
    )
)


PATCHES.append(
    (
        ROOT / "codepipeline" / "models.py",
        """            "startTime": iso_8601_datetime_with_milliseconds(self.start_time),
            "lastUpdateTime": iso_8601_datetime_with_milliseconds(
                self.last_update_time
            ),
""",
        """            "startTime": self.start_time.timestamp(),  %s
            "lastUpdateTime": self.last_update_time.timestamp(),
"""
        % MARK,
    )
)


PATCHES.append(
    (
        ROOT / "events" / "models.py",
        """    def iter_tagged_resources(self) -> Iterator[TaggedResource]:
        for bus in self.event_buses.values():
""",
        """    def iter_tagged_resources(self) -> Iterator[TaggedResource]:
        for bus in self.event_buses.values():  %s
            for rule in bus.rules.values():
                yield TaggedResource(
                    arn=rule.arn,
                    tags=self.tagger.get_tag_dict_for_resource(rule.arn),
                    resource_type="events:rule",
                )
"""
        % MARK,
    )
)


def main() -> int:
    for path, old, new in PATCHES:
        text = path.read_text()
        if new in text:
            continue
        if old not in text:
            print(f"patch-moto: {path} does not contain the expected code; is this moto 5.2.5?", file=sys.stderr)
            return 1
        path.write_text(text.replace(old, new, 1))
        print(f"patch-moto: patched {path.relative_to(ROOT.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
