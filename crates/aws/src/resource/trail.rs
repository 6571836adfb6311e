//! Adapter: the CloudTrail trail recording writes to the source objects (S3 data events) of the
//! pipelines sharing it, through one advanced event selector (`slipway_core::resource::trail`).

use crate::ahead::ReadAhead;
use crate::tags::swept_or;
use crate::{Aws, AwsError, absent_if_not_found, aws_err};
use aws_sdk_cloudtrail::types::{AdvancedEventSelector, AdvancedFieldSelector, Tag};
use slipway_core::resource::trail::{AdvancedSelectorSpec, DataResourceSpec, FieldSelectorSpec, Keep, SelectorSpec, TrailSpec};
use slipway_core::resource::{Live, Spec, Tags};

pub(crate) async fn read(aws: &Aws, name: &str, ahead: Option<&ReadAhead>) -> Result<Option<Live>, AwsError> {
    if let Some(found) = ahead.and_then(|a| a.trail(name)) {
        return Ok(found.clone());
    }
    let Some(got) = absent_if_not_found(aws.cloudtrail.get_trail().name(name).send().await.map_err(aws_err("cloudtrail", "GetTrail")))?
    else {
        return Ok(None);
    };
    let Some(trail) = got.trail else {
        return Ok(None);
    };
    let status = aws.cloudtrail.get_trail_status().name(name).send().await.map_err(aws_err("cloudtrail", "GetTrailStatus"))?;
    let selectors =
        aws.cloudtrail.get_event_selectors().trail_name(name).send().await.map_err(aws_err("cloudtrail", "GetEventSelectors"))?;
    let arn = trail.trail_arn.clone().unwrap_or_else(|| aws.arn("cloudtrail", &format!("trail/{name}")));
    let tags = swept_or(ahead.and_then(ReadAhead::tags), &arn, async {
        Ok(read_tags(aws, std::slice::from_ref(&arn)).await?.into_iter().next().map(|(_, t)| t).unwrap_or_default())
    })
    .await?;
    let event_selectors = selectors
        .event_selectors
        .unwrap_or_default()
        .into_iter()
        .map(|s| SelectorSpec {
            read_write_type: s.read_write_type.map(|r| r.as_str().to_owned()).unwrap_or_else(|| "All".into()),
            include_management_events: s.include_management_events.unwrap_or(true),
            data_resources: s
                .data_resources
                .unwrap_or_default()
                .into_iter()
                .map(|d| DataResourceSpec { kind: d.r#type.unwrap_or_default(), values: sorted(d.values) })
                .collect(),
        })
        .collect();
    let advanced_event_selectors = selectors.advanced_event_selectors.unwrap_or_default().into_iter().map(advanced_spec).collect();
    Ok(Some(Live {
        spec: Spec::Trail(TrailSpec {
            s3_bucket_name: trail.s3_bucket_name.unwrap_or_default(),
            s3_key_prefix: trail.s3_key_prefix.filter(|p| !p.is_empty()),
            is_multi_region_trail: trail.is_multi_region_trail.unwrap_or(false),
            logging: status.is_logging.unwrap_or(false),
            event_selectors,
            advanced_event_selectors,
            keep: Keep::Nothing,
        }),
        tags,
    }))
}

fn sorted(values: Option<Vec<String>>) -> Vec<String> {
    let mut values = values.unwrap_or_default();
    values.sort();
    values
}

fn advanced_spec(s: AdvancedEventSelector) -> AdvancedSelectorSpec {
    let mut field_selectors: Vec<FieldSelectorSpec> = s
        .field_selectors
        .into_iter()
        .map(|f| FieldSelectorSpec {
            field: f.field,
            equals: sorted(f.equals),
            starts_with: sorted(f.starts_with),
            ends_with: sorted(f.ends_with),
            not_equals: sorted(f.not_equals),
            not_starts_with: sorted(f.not_starts_with),
            not_ends_with: sorted(f.not_ends_with),
        })
        .collect();
    field_selectors.sort_by(|a, b| a.field.cmp(&b.field));
    AdvancedSelectorSpec { name: s.name.unwrap_or_default(), field_selectors }
}

async fn read_tags(aws: &Aws, arns: &[String]) -> Result<Vec<(String, Tags)>, AwsError> {
    let listed =
        aws.cloudtrail.list_tags().set_resource_id_list(Some(arns.to_vec())).send().await.map_err(aws_err("cloudtrail", "ListTags"))?;
    Ok(listed
        .resource_tag_list
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r.resource_id.unwrap_or_default(),
                r.tags_list.unwrap_or_default().into_iter().map(|t| (t.key, t.value.unwrap_or_default())).collect(),
            )
        })
        .collect())
}

fn sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key set")).collect()
}

pub(crate) async fn create(aws: &Aws, name: &str, spec: &TrailSpec, tags: &Tags) -> Result<(), AwsError> {
    aws.cloudtrail
        .create_trail()
        .name(name)
        .s3_bucket_name(&spec.s3_bucket_name)
        .set_s3_key_prefix(spec.s3_key_prefix.clone())
        .is_multi_region_trail(spec.is_multi_region_trail)
        .set_tags_list(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("cloudtrail", "CreateTrail"))?;
    put_selectors(aws, name, &spec.advanced_event_selectors).await?;
    if spec.logging {
        start_logging(aws, name).await?;
    }
    Ok(())
}

pub(crate) async fn update(aws: &Aws, name: &str, want: &TrailSpec, have: &TrailSpec) -> Result<(), AwsError> {
    if (&want.s3_bucket_name, &want.s3_key_prefix, want.is_multi_region_trail)
        != (&have.s3_bucket_name, &have.s3_key_prefix, have.is_multi_region_trail)
    {
        aws.cloudtrail
            .update_trail()
            .name(name)
            .s3_bucket_name(&want.s3_bucket_name)
            .s3_key_prefix(want.s3_key_prefix.clone().unwrap_or_default())
            .is_multi_region_trail(want.is_multi_region_trail)
            .send()
            .await
            .map_err(aws_err("cloudtrail", "UpdateTrail"))?;
    }
    if (&want.event_selectors, &want.advanced_event_selectors) != (&have.event_selectors, &have.advanced_event_selectors) {
        put_selectors(aws, name, &want.advanced_event_selectors).await?;
    }
    if want.logging != have.logging {
        if want.logging {
            start_logging(aws, name).await?;
        } else {
            aws.cloudtrail.stop_logging().name(name).send().await.map_err(aws_err("cloudtrail", "StopLogging"))?;
        }
    }
    Ok(())
}

/// Sets the advanced selectors; they replace any basic ones (AWS keeps one kind per trail).
async fn put_selectors(aws: &Aws, name: &str, selectors: &[AdvancedSelectorSpec]) -> Result<(), AwsError> {
    let nonempty = |values: &Vec<String>| (!values.is_empty()).then(|| values.clone());
    let selectors: Vec<AdvancedEventSelector> = selectors
        .iter()
        .map(|s| {
            let fields = s
                .field_selectors
                .iter()
                .map(|f| {
                    AdvancedFieldSelector::builder()
                        .field(&f.field)
                        .set_equals(nonempty(&f.equals))
                        .set_starts_with(nonempty(&f.starts_with))
                        .set_ends_with(nonempty(&f.ends_with))
                        .set_not_equals(nonempty(&f.not_equals))
                        .set_not_starts_with(nonempty(&f.not_starts_with))
                        .set_not_ends_with(nonempty(&f.not_ends_with))
                        .build()
                        .expect("field set")
                })
                .collect();
            AdvancedEventSelector::builder().name(&s.name).set_field_selectors(Some(fields)).build().expect("field selectors set")
        })
        .collect();
    aws.cloudtrail
        .put_event_selectors()
        .trail_name(name)
        .set_advanced_event_selectors(Some(selectors))
        .send()
        .await
        .map_err(aws_err("cloudtrail", "PutEventSelectors"))?;
    Ok(())
}

async fn start_logging(aws: &Aws, name: &str) -> Result<(), AwsError> {
    aws.cloudtrail.start_logging().name(name).send().await.map_err(aws_err("cloudtrail", "StartLogging"))?;
    Ok(())
}

pub(crate) async fn tag(aws: &Aws, name: &str, tags: &Tags) -> Result<(), AwsError> {
    let arn = aws.arn("cloudtrail", &format!("trail/{name}"));
    aws.cloudtrail
        .add_tags()
        .resource_id(arn)
        .set_tags_list(Some(sdk_tags(tags)))
        .send()
        .await
        .map_err(aws_err("cloudtrail", "AddTags"))?;
    Ok(())
}

pub(crate) async fn delete(aws: &Aws, name: &str) -> Result<(), AwsError> {
    aws.cloudtrail.delete_trail().name(name).send().await.map_err(aws_err("cloudtrail", "DeleteTrail"))?;
    Ok(())
}
