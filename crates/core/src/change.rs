//! Change events: AWS has no watch, but every write API call is recorded by CloudTrail and
//! delivered to the account's default event bus as an `AWS API Call via CloudTrail` event. With
//! `--change-events`, one EventBridge rule of slipway's matches the calls that can change what
//! slipway manages ([`rule_pattern`]) and sends them to one SQS queue; the loop reads each
//! message ([`read`]) into the resources it names and re-checks only the pipelines that own them.
//!
//! Which calls: for each service, those that change a field slipway sets (the normalised specs in
//! [`crate::resource`]), its ownership tags, or delete the resource ([`EventSource::writes`]).
//! Creates are left out (a resource slipway wants and someone else creates is found on the next
//! check of its pipeline), and so are object writes to a source bucket: those are the S3 trigger,
//! not drift. Read-only calls never reach a rule unless it asks for them; this one does not.
//!
//! The pattern lists the sources and the call names, not one list per source: EventBridge's
//! pattern size quota is 2,048 characters by default ([`PATTERN_MAX`]). A call of the union that a
//! service does not have matches nothing; [`read`] keeps only the calls of each event's source.

use serde_json::{Value, json};

use crate::resource::{Key, Kind};

/// The `detail-type` of every event CloudTrail delivers for an API call.
pub const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// EventBridge's default quota on the size of an event pattern, in characters (adjustable to
/// 4,096). The change rule's pattern stays within the default.
pub const PATTERN_MAX: usize = 2048;

labels! {
    /// A service whose write calls can change what slipway manages, as events name it (`source`).
    pub enum EventSource {
        Ecr = "aws.ecr",
        S3 = "aws.s3",
        CloudTrail = "aws.cloudtrail",
        CodeBuild = "aws.codebuild",
        CodeDeploy = "aws.codedeploy",
        CodePipeline = "aws.codepipeline",
        Events = "aws.events",
    }
}

impl EventSource {
    /// The calls of this service that change a field slipway sets, the ownership tags, or delete
    /// the resource.
    pub fn writes(self) -> &'static [&'static str] {
        match self {
            EventSource::Ecr => &[
                "DeleteRepository",
                "PutImageScanningConfiguration",
                "PutImageTagMutability",
                "PutLifecyclePolicy",
                "DeleteLifecyclePolicy",
                "TagResource",
                "UntagResource",
            ],
            EventSource::S3 => &[
                "DeleteBucket",
                "PutBucketVersioning",
                "PutBucketEncryption",
                "DeleteBucketEncryption",
                "PutBucketPublicAccessBlock",
                "DeleteBucketPublicAccessBlock",
                "PutBucketTagging",
                "DeleteBucketTagging",
                "PutBucketNotification",
            ],
            EventSource::CloudTrail => &["DeleteTrail", "UpdateTrail", "StopLogging", "PutEventSelectors", "AddTags", "RemoveTags"],
            // A project's tags change through UpdateProject.
            EventSource::CodeBuild => &["UpdateProject", "DeleteProject"],
            EventSource::CodeDeploy => &[
                "DeleteApplication",
                "UpdateApplication",
                "UpdateDeploymentGroup",
                "DeleteDeploymentGroup",
                "TagResource",
                "UntagResource",
            ],
            EventSource::CodePipeline => &["UpdatePipeline", "DeletePipeline", "TagResource", "UntagResource"],
            EventSource::Events => &["PutRule", "DeleteRule", "DisableRule", "PutTargets", "RemoveTargets", "TagResource", "UntagResource"],
        }
    }

    /// The service whose calls can change a resource of `kind`; `None` for the source artifact
    /// (a write to it is the trigger, and its pipeline's check reads it anyway) and for an ECS
    /// service's settings.
    pub fn of(kind: Kind) -> Option<EventSource> {
        match kind {
            Kind::EcrRepository => Some(EventSource::Ecr),
            Kind::S3Bucket => Some(EventSource::S3),
            Kind::CloudTrailTrail => Some(EventSource::CloudTrail),
            Kind::CodeBuildProject => Some(EventSource::CodeBuild),
            Kind::CodeDeployApplication | Kind::CodeDeployDeploymentGroup => Some(EventSource::CodeDeploy),
            Kind::CodePipeline => Some(EventSource::CodePipeline),
            Kind::EventRule => Some(EventSource::Events),
            // The service's settings are seen by the drift check only: the feed does not
            // follow ECS (its UpdateService calls are every deployment's, not drift).
            Kind::EcsServiceSettings | Kind::SourceArtifact => None,
        }
    }
}

/// The change rule's event pattern: every source, and every call of [`EventSource::writes`].
pub fn rule_pattern() -> Value {
    let mut calls: Vec<&str> = EventSource::ALL.iter().flat_map(|s| s.writes().iter().copied()).collect();
    calls.sort_unstable();
    calls.dedup();
    json!({
        "source": EventSource::ALL.map(EventSource::as_str),
        "detail-type": [DETAIL_TYPE],
        "detail": {"eventName": calls},
    })
}

labels! {
    /// What became of one message of the queue (the `outcome` label of
    /// `slipway_change_events_total`).
    pub enum ChangeOutcome {
        /// The pipelines owning what it names were re-checked.
        Rechecked = "rechecked",
        /// No pipeline owns what it names.
        Unowned = "unowned",
        /// slipway made the call itself: it already knows.
        OwnWrite = "own-write",
        /// Not a write that can change what slipway manages (a failed call, another event).
        Ignored = "ignored",
    }
}

/// One write call, read from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub source: EventSource,
    /// The API call (`eventName`).
    pub call: String,
    /// Who made it (`userIdentity.arn`), when the event says.
    pub actor: Option<String>,
    /// The resources it may have changed, as slipway names them. A name of another kind's
    /// namespace may be among them; only keys some pipeline owns matter.
    pub keys: Vec<Key>,
}

/// Why a message is not a change event slipway can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("not a JSON event: {0}")]
    NotJson(String),
    #[error("not an API call event of a service slipway watches (source {from:?}, detail-type {detail_type:?})")]
    Foreign { from: Option<String>, detail_type: Option<String> },
}

/// Reads an event as EventBridge delivers it to the queue. `Ok(None)` for a call that changed
/// nothing: it failed (`errorCode`), or it is not one of its service's [`EventSource::writes`].
pub fn read(body: &str) -> Result<Option<Change>, ChangeError> {
    let event: Value = serde_json::from_str(body).map_err(|e| ChangeError::NotJson(e.to_string()))?;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let detail_type = text(&event["detail-type"]);
    let source = event["source"].as_str().and_then(EventSource::parse);
    let Some(source) = source.filter(|_| detail_type.as_deref() == Some(DETAIL_TYPE)) else {
        return Err(ChangeError::Foreign { from: text(&event["source"]), detail_type });
    };
    let detail = &event["detail"];
    let call = text(&detail["eventName"]).unwrap_or_default();
    if detail.get("errorCode").is_some_and(|c| !c.is_null()) || !source.writes().contains(&call.as_str()) {
        return Ok(None);
    }
    let actor = text(&detail["userIdentity"]["arn"]);
    Ok(Some(Change { source, call, actor, keys: keys(source, &detail["requestParameters"]) }))
}

/// The fields of `requestParameters` that name a resource directly, across the watched calls.
const NAME_FIELDS: [&str; 6] = ["name", "trailName", "repositoryName", "bucketName", "applicationName", "rule"];
/// The fields that hold a resource's ARN (tagging calls; CloudTrail's `resourceId`).
const ARN_FIELDS: [&str; 3] = ["resourceArn", "resourceARN", "resourceId"];

/// The keys a call's parameters name, for the kinds of its service.
fn keys(source: EventSource, params: &Value) -> Vec<Key> {
    let field = |name: &str| params.get(name).and_then(Value::as_str);
    let mut names: Vec<String> = NAME_FIELDS.iter().filter_map(|f| field(f)).map(|n| resource_name(source, n)).collect();
    // UpdatePipeline sends the whole declaration.
    names.extend(params["pipeline"]["name"].as_str().map(str::to_owned));
    names.extend(ARN_FIELDS.iter().filter_map(|f| field(f)).filter(|v| v.starts_with("arn:")).map(|arn| resource_name(source, arn)));
    let group = field("currentDeploymentGroupName").or(field("deploymentGroupName"));
    let mut keys: Vec<Key> = Vec::new();
    for kind in Kind::ALL.into_iter().filter(|k| EventSource::of(*k) == Some(source)) {
        if kind == Kind::CodeDeployDeploymentGroup {
            let in_arn = names.iter().filter(|n| n.contains('/')).cloned();
            let named = field("applicationName").zip(group).map(|(app, group)| format!("{app}/{group}"));
            keys.extend(in_arn.chain(named).map(|n| Key::new(kind, n)));
        } else {
            keys.extend(names.iter().filter(|n| !n.contains('/') || kind == Kind::EcrRepository).map(|n| Key::new(kind, n.clone())));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A resource's name from a value that is either its name or its ARN. ARNs end in
/// `repository/<name>`, `project/<name>`, `trail/<name>`, `rule/<name>`, `application:<name>`,
/// `deploymentgroup:<app>/<group>`, or (CodePipeline) `:<name>`.
fn resource_name(source: EventSource, value: &str) -> String {
    let Some(resource) = value.strip_prefix("arn:").and_then(|rest| rest.splitn(5, ':').nth(4)) else {
        return value.to_owned();
    };
    let typed = ["repository/", "project/", "trail/", "rule/", "application:", "deploymentgroup:"];
    match typed.iter().find_map(|t| resource.strip_prefix(t)) {
        Some(name) => name.to_owned(),
        // S3 bucket ARNs have no account or Region: `arn:aws:s3:::<bucket>`.
        None if source == EventSource::S3 => value.rsplit(':').next().unwrap_or(value).to_owned(),
        None => resource.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, call: &str, params: Value) -> String {
        json!({
            "version": "0",
            "id": "6f3ba7a4-1a9e-4c3e-9d3f-0c1c0f1c3b1a",
            "detail-type": DETAIL_TYPE,
            "source": source,
            "account": "123456789012",
            "region": "ap-northeast-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.09",
                "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/Admin/alice"},
                "eventSource": format!("{}.amazonaws.com", source.trim_start_matches("aws.")),
                "eventName": call,
                "requestParameters": params,
                "readOnly": false,
            }
        })
        .to_string()
    }

    fn keys_of(source: &str, call: &str, params: Value) -> Vec<String> {
        read(&event(source, call, params)).unwrap().expect("a write").keys.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_pattern_names_every_source_and_call_and_fits_eventbridges_default_quota() {
        let pattern = rule_pattern();
        let text = pattern.to_string();
        assert!(text.len() <= PATTERN_MAX, "{} characters", text.len());
        for source in EventSource::ALL {
            assert!(pattern["source"].as_array().unwrap().contains(&json!(source.as_str())));
            for call in source.writes() {
                assert!(pattern["detail"]["eventName"].as_array().unwrap().contains(&json!(call)), "{call}");
            }
        }
        assert_eq!(pattern["detail-type"], json!([DETAIL_TYPE]));
        // Every kind slipway manages, but the artifact and an ECS service's settings, is covered
        // by some source.
        let covered: Vec<Kind> = Kind::ALL.into_iter().filter(|k| EventSource::of(*k).is_some()).collect();
        assert_eq!(covered.len(), Kind::ALL.len() - 2);
    }

    #[test]
    fn each_service_s_calls_name_their_resources() {
        assert_eq!(
            keys_of("aws.codebuild", "UpdateProject", json!({"name": "web-build", "timeoutInMinutes": 5})),
            ["codebuild-project web-build"]
        );
        assert_eq!(
            keys_of("aws.ecr", "PutImageTagMutability", json!({"repositoryName": "team/web", "imageTagMutability": "MUTABLE"})),
            ["ecr-repository team/web"]
        );
        assert_eq!(
            keys_of("aws.ecr", "UntagResource", json!({"resourceArn": "arn:aws:ecr:ap-northeast-1:123456789012:repository/team/web"})),
            ["ecr-repository team/web"]
        );
        assert_eq!(
            keys_of("aws.s3", "PutBucketVersioning", json!({"bucketName": "web-src", "Host": "web-src.s3.amazonaws.com"})),
            ["s3-bucket web-src"]
        );
        assert_eq!(
            keys_of("aws.cloudtrail", "StopLogging", json!({"name": "arn:aws:cloudtrail:ap-northeast-1:123456789012:trail/slipway-web"})),
            ["cloudtrail-trail slipway-web"]
        );
        assert_eq!(keys_of("aws.cloudtrail", "PutEventSelectors", json!({"trailName": "slipway-web"})), ["cloudtrail-trail slipway-web"]);
        assert_eq!(keys_of("aws.codepipeline", "UpdatePipeline", json!({"pipeline": {"name": "web", "stages": []}})), ["codepipeline web"]);
        assert_eq!(
            keys_of("aws.codepipeline", "TagResource", json!({"resourceArn": "arn:aws:codepipeline:ap-northeast-1:123456789012:web"})),
            ["codepipeline web"]
        );
        assert_eq!(
            keys_of("aws.events", "RemoveTargets", json!({"rule": "slipway-web-ecr", "ids": ["codepipeline"]})),
            ["eventbridge-rule slipway-web-ecr"]
        );
        assert_eq!(
            keys_of("aws.events", "TagResource", json!({"resourceARN": "arn:aws:events:ap-northeast-1:123456789012:rule/slipway-web-s3"})),
            ["eventbridge-rule slipway-web-s3"]
        );
        assert_eq!(
            keys_of("aws.codedeploy", "UpdateDeploymentGroup", json!({"applicationName": "web", "currentDeploymentGroupName": "web-dg"})),
            ["codedeploy-application web", "codedeploy-deployment-group web/web-dg"]
        );
        assert_eq!(
            keys_of(
                "aws.codedeploy",
                "TagResource",
                json!({"resourceArn": "arn:aws:codedeploy:ap-northeast-1:123456789012:deploymentgroup:web/web-dg"})
            ),
            ["codedeploy-deployment-group web/web-dg"]
        );
    }

    #[test]
    fn the_actor_is_kept_and_calls_that_changed_nothing_are_none() {
        let change = read(&event("aws.codebuild", "DeleteProject", json!({"name": "web-build"}))).unwrap().unwrap();
        assert_eq!(change.actor.as_deref(), Some("arn:aws:sts::123456789012:assumed-role/Admin/alice"));
        assert_eq!((change.source, change.call.as_str()), (EventSource::CodeBuild, "DeleteProject"));
        let mut failed: Value = serde_json::from_str(&event("aws.codebuild", "DeleteProject", json!({"name": "web-build"}))).unwrap();
        failed["detail"]["errorCode"] = json!("AccessDenied");
        assert_eq!(read(&failed.to_string()), Ok(None), "a call that failed changed nothing");
        // TagResource is in the pattern for ECR, but CodeBuild has no such call.
        assert_eq!(read(&event("aws.codebuild", "TagResource", json!({"resourceArn": "x"}))), Ok(None));
        assert_eq!(read(&event("aws.s3", "PutObject", json!({"bucketName": "web-src", "key": "source.zip"}))), Ok(None));
    }

    #[test]
    fn messages_that_are_not_api_call_events_are_errors_that_say_what_they_are() {
        assert!(matches!(read("{not json"), Err(ChangeError::NotJson(_))));
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}).to_string();
        let err = read(&scheduled).unwrap_err();
        assert!(err.to_string().contains("Scheduled Event"), "{err}");
        assert!(matches!(read(&event("aws.ec2", "StopInstances", json!({}))), Err(ChangeError::Foreign { .. })));
    }
}
