//! Buckets: CreateBucket (with `x-amz-bucket-object-lock-enabled`), HeadBucket, ListBuckets,
//! GetBucketLocation, Get/PutBucketVersioning (no suspending under Object Lock),
//! Get/PutObjectLockConfiguration.

use std::time::SystemTime;

use hyper::Response;
use hyper::body::Incoming;

use super::model::{Bucket, Retention};
use super::xml::{Doc, iso, text};
use super::{Answer, Call, S3, err, no_bucket, xml_answer};
use crate::http::Body;

impl S3 {
    /// CreateBucket.
    pub(super) fn create_bucket(&self, call: &Call) -> Answer {
        let lock = call
            .header("x-amz-bucket-object-lock-enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let mut buckets = self.lock();
        if buckets.contains_key(&call.bucket) {
            return Err(err(
                409,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            ));
        }
        buckets.insert(
            call.bucket.clone(),
            Bucket {
                created: Some(SystemTime::now()),
                versioning: lock.then(|| "Enabled".to_string()),
                lock_enabled: lock,
                ..Bucket::default()
            },
        );
        Ok((
            Response::builder().header("location", format!("/{}", call.bucket)),
            Body::Empty,
        ))
    }

    /// HeadBucket.
    pub(super) fn head_bucket(&self, call: &Call) -> Answer {
        self.lock()
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        Ok((
            Response::builder().header("x-amz-bucket-region", "us-east-1"),
            Body::Empty,
        ))
    }

    /// ListBuckets.
    pub(super) fn list_buckets(&self) -> Answer {
        let root = "ListAllMyBucketsResult";
        let mut doc = Doc::new(root);
        doc.open("Owner")
            .el("ID", "forensnap-emulator")
            .close("Owner");
        doc.open("Buckets");
        for (name, bucket) in self.lock().iter() {
            doc.open("Bucket")
                .el("Name", name)
                .el(
                    "CreationDate",
                    iso(bucket.created.unwrap_or(SystemTime::UNIX_EPOCH)),
                )
                .close("Bucket");
        }
        doc.close("Buckets");
        xml_answer(doc.end(root))
    }

    /// GetBucketLocation (us-east-1: an empty constraint).
    pub(super) fn location(&self, call: &Call) -> Answer {
        self.lock()
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        xml_answer(Doc::new("LocationConstraint").end("LocationConstraint"))
    }

    /// GetBucketVersioning.
    pub(super) fn get_versioning(&self, call: &Call) -> Answer {
        let buckets = self.lock();
        let bucket = buckets
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        let root = "VersioningConfiguration";
        let mut doc = Doc::new(root);
        doc.opt("Status", bucket.versioning.as_deref());
        xml_answer(doc.end(root))
    }

    /// PutBucketVersioning.
    pub(super) async fn put_versioning(&self, call: &Call, body: Incoming) -> Answer {
        let document = self.read_xml(body).await?;
        let status = text(&document, "Status").unwrap_or_default();
        if !matches!(status.as_str(), "Enabled" | "Suspended") {
            return Err(err(
                400,
                "MalformedXML",
                "Status must be Enabled or Suspended",
            ));
        }
        let mut buckets = self.lock();
        let bucket = buckets
            .get_mut(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        if bucket.lock_enabled && status == "Suspended" {
            return Err(err(
                409,
                "InvalidBucketState",
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
            ));
        }
        bucket.versioning = Some(status);
        Ok((Response::builder(), Body::Empty))
    }

    /// GetObjectLockConfiguration.
    pub(super) fn get_lock_configuration(&self, call: &Call) -> Answer {
        let buckets = self.lock();
        let bucket = buckets
            .get(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        if !bucket.lock_enabled {
            return Err(err(
                404,
                "ObjectLockConfigurationNotFoundError",
                "Object Lock configuration does not exist for this bucket",
            ));
        }
        let root = "ObjectLockConfiguration";
        let mut doc = Doc::new(root);
        doc.el("ObjectLockEnabled", "Enabled");
        if let Some(r) = &bucket.default_retention {
            doc.open("Rule")
                .open("DefaultRetention")
                .el("Mode", &r.mode)
                .el("Days", r.days)
                .close("DefaultRetention")
                .close("Rule");
        }
        xml_answer(doc.end(root))
    }

    /// PutObjectLockConfiguration (Days or Years; a year is 365 days here).
    pub(super) async fn put_lock_configuration(&self, call: &Call, body: Incoming) -> Answer {
        let document = self.read_xml(body).await?;
        let retention = match text(&document, "DefaultRetention") {
            None => None,
            Some(_) => {
                let inner = super::xml::all(&document, "DefaultRetention").concat();
                let mode = text(&inner, "Mode").unwrap_or_default();
                if !matches!(mode.as_str(), "COMPLIANCE" | "GOVERNANCE") {
                    return Err(err(
                        400,
                        "MalformedXML",
                        "Mode must be COMPLIANCE or GOVERNANCE",
                    ));
                }
                let days = match (text(&inner, "Days"), text(&inner, "Years")) {
                    (Some(d), None) => d.parse::<u32>().ok(),
                    (None, Some(y)) => y.parse::<u32>().ok().map(|y| y * 365),
                    _ => None,
                }
                .filter(|d| *d > 0)
                .ok_or_else(|| {
                    err(
                        400,
                        "MalformedXML",
                        "exactly one of Days or Years, positive",
                    )
                })?;
                Some(Retention { mode, days })
            }
        };
        let mut buckets = self.lock();
        let bucket = buckets
            .get_mut(&call.bucket)
            .ok_or_else(|| no_bucket(&call.bucket))?;
        if !bucket.versioned() {
            return Err(err(
                409,
                "InvalidBucketState",
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
            ));
        }
        bucket.lock_enabled = true;
        bucket.default_retention = retention;
        Ok((Response::builder(), Body::Empty))
    }
}
