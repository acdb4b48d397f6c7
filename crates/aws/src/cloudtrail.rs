//! [`forensnap_ports::Trail`] over CloudTrail and S3 in the member account: LookupEvents and
//! ListPublicKeys with the exact bytes exchanged (an interceptor copies the request body as sent
//! and the response body as received), DescribeTrails, and read-only access to the trail's
//! bucket. The SDK does not retry LookupEvents: the caller paces its calls under CloudTrail's
//! quota and retries throttled pages itself, counting them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_cloudtrail::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_cloudtrail::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_cloudtrail::error::BoxError;
use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_smithy_types::DateTime;
use forensnap_ports::{
    Called, CloudError, Exchange, FetchedObject, ListedObject, LookupCall, PublicKeyInfo, Trail,
    TrailInfo,
};
use forensnap_store::ErrorKind;
use time::OffsetDateTime;

use crate::errors::aws_error;

/// CloudTrail and the trail bucket of one member account and region.
#[derive(Clone, Debug)]
pub struct SdkTrail {
    cloudtrail: aws_sdk_cloudtrail::Client,
    s3: aws_sdk_s3::Client,
    account: String,
    region: String,
}

impl SdkTrail {
    /// CloudTrail of `sdk`'s account and region (SDK retries off: the caller paces and retries),
    /// and `s3` for the trail's bucket.
    pub fn new(sdk: &SdkConfig, s3: aws_sdk_s3::Client, account: &str, region: &str) -> SdkTrail {
        let config = aws_sdk_cloudtrail::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .build();
        SdkTrail {
            cloudtrail: aws_sdk_cloudtrail::Client::from_conf(config),
            s3,
            account: account.to_string(),
            region: region.to_string(),
        }
    }
}

/// Copies the request body of the last attempt as sent and the response body as received.
#[derive(Debug, Default, Clone)]
struct Capture(Arc<Mutex<(Vec<u8>, Vec<u8>)>>);

impl Capture {
    fn taken(&self) -> (Vec<u8>, Vec<u8>) {
        match self.0.lock() {
            Ok(mut held) => std::mem::take(&mut *held),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    fn set(&self, request: Option<Vec<u8>>, response: Option<Vec<u8>>) {
        let mut held = match self.0.lock() {
            Ok(held) => held,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(request) = request {
            held.0 = request;
        }
        if let Some(response) = response {
            held.1 = response;
        }
    }
}

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "forensnap-exchange-capture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().map(<[u8]>::to_vec);
        self.set(Some(body.unwrap_or_default()), None);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The orchestrator has read the whole body by now (non-streaming operation).
        let body = context.response().body().bytes().map(<[u8]>::to_vec);
        self.set(None, Some(body.unwrap_or_default()));
        Ok(())
    }
}

fn sdk_time(at: OffsetDateTime) -> DateTime {
    DateTime::from_secs(at.unix_timestamp())
}

fn offset_time(at: Option<&DateTime>) -> OffsetDateTime {
    at.and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn attribute_key(key: &str) -> Result<LookupAttributeKey, CloudError> {
    let known = LookupAttributeKey::values();
    if known.contains(&key) {
        Ok(LookupAttributeKey::from(key))
    } else {
        Err(CloudError::new(
            ErrorKind::Invalid,
            "LookupEvents",
            format!(
                "lookup attribute {key:?} is not one of {}",
                known.join(", ")
            ),
        ))
    }
}

impl Trail for SdkTrail {
    fn account(&self) -> &str {
        &self.account
    }

    fn region(&self) -> &str {
        &self.region
    }

    async fn lookup_events(&self, call: &LookupCall) -> Result<Exchange, CloudError> {
        let capture = Capture::default();
        let attribute = LookupAttribute::builder()
            .attribute_key(attribute_key(&call.key)?)
            .attribute_value(&call.value)
            .build()
            .map_err(|e| CloudError::new(ErrorKind::Invalid, "LookupEvents", e.to_string()))?;
        let output = self
            .cloudtrail
            .lookup_events()
            .lookup_attributes(attribute)
            .start_time(sdk_time(call.start))
            .end_time(sdk_time(call.end))
            .max_results(i32::try_from(call.max_results).unwrap_or(50))
            .set_next_token(call.next_token.clone())
            .customize()
            .interceptor(capture.clone())
            .send()
            .await
            .map_err(|e| aws_error("LookupEvents", e))?;
        let (request, response) = capture.taken();
        use aws_sdk_cloudtrail::operation::RequestId;
        Ok(Exchange {
            request,
            response,
            request_id: output.request_id().map(str::to_string),
        })
    }

    async fn describe_trails(&self) -> Result<Called<Vec<TrailInfo>>, CloudError> {
        let output = self
            .cloudtrail
            .describe_trails()
            .include_shadow_trails(true)
            .send()
            .await
            .map_err(|e| aws_error("DescribeTrails", e))?;
        use aws_sdk_cloudtrail::operation::RequestId;
        let request_id = output.request_id().map(str::to_string);
        let trails = output
            .trail_list()
            .iter()
            .map(|t| TrailInfo {
                name: t.name().unwrap_or_default().to_string(),
                arn: t.trail_arn().unwrap_or_default().to_string(),
                home_region: t.home_region().unwrap_or_default().to_string(),
                bucket: t.s3_bucket_name().map(str::to_string),
                prefix: t
                    .s3_key_prefix()
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
                log_file_validation: t.log_file_validation_enabled().unwrap_or(false),
                multi_region: t.is_multi_region_trail().unwrap_or(false),
                organization: t.is_organization_trail().unwrap_or(false),
            })
            .collect();
        Ok(Called::new(trails, request_id))
    }

    async fn trail_status(&self, trail_arn: &str) -> Result<Exchange, CloudError> {
        let capture = Capture::default();
        let output = self
            .cloudtrail
            .get_trail_status()
            .name(trail_arn)
            .customize()
            .interceptor(capture.clone())
            .send()
            .await
            .map_err(|e| aws_error("GetTrailStatus", e))?;
        let (request, response) = capture.taken();
        use aws_sdk_cloudtrail::operation::RequestId;
        Ok(Exchange {
            request,
            response,
            request_id: output.request_id().map(str::to_string),
        })
    }

    async fn list_public_keys(
        &self,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<(Vec<PublicKeyInfo>, Exchange), CloudError> {
        let capture = Capture::default();
        let output = self
            .cloudtrail
            .list_public_keys()
            .start_time(sdk_time(start))
            .end_time(sdk_time(end))
            .customize()
            .interceptor(capture.clone())
            .send()
            .await
            .map_err(|e| aws_error("ListPublicKeys", e))?;
        let (request, response) = capture.taken();
        use aws_sdk_cloudtrail::operation::RequestId;
        let request_id = output.request_id().map(str::to_string);
        let keys = output
            .public_key_list()
            .iter()
            .map(|k| PublicKeyInfo {
                fingerprint: k.fingerprint().unwrap_or_default().to_string(),
                der: k.value().map(|b| b.as_ref().to_vec()).unwrap_or_default(),
                valid_from: offset_time(k.validity_start_time()),
                valid_until: offset_time(k.validity_end_time()),
            })
            .collect();
        Ok((
            keys,
            Exchange {
                request,
                response,
                request_id,
            },
        ))
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ListedObject>, CloudError> {
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        // Bounded: 100,000 pages of 1,000 keys is far beyond any window's trail files.
        for _ in 0..100_000 {
            let output = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| aws_error("ListObjectsV2", e))?;
            listed.extend(output.contents().iter().filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_string(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                })
            }));
            match output.next_continuation_token() {
                Some(next) if output.is_truncated() == Some(true) => token = Some(next.into()),
                _ => break,
            }
        }
        Ok(listed)
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<FetchedObject>, CloudError> {
        let output = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(output) => output,
            Err(e) => {
                let err = aws_error("GetObject", e);
                if err.kind == ErrorKind::NotFound {
                    return Ok(None);
                }
                return Err(err);
            }
        };
        let metadata: BTreeMap<String, String> = output
            .metadata()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let version_id = output.version_id().map(str::to_string);
        let etag = output.e_tag().map(str::to_string);
        let last_modified = output
            .last_modified()
            .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok());
        let bytes = output.body.collect().await.map_err(|e| {
            CloudError::new(
                ErrorKind::Transient,
                "GetObject",
                format!("reading s3://{bucket}/{key}: {e}"),
            )
        })?;
        Ok(Some(FetchedObject {
            bytes: bytes.into_bytes().to_vec(),
            metadata,
            version_id,
            etag,
            last_modified,
        }))
    }
}
