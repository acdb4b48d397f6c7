//! An in-memory EC2 (every account of a fake cloud) for the unit tests of the preservation run
//! and of the crates that orchestrate it; the evidence bucket is [`forensnap_store::MemoryStore`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use forensnap_ports::{Called, CloudError, Ec2, InstanceRecord, SnapState, SnapshotInfo};

/// One snapshot in the fake cloud.
#[derive(Debug, Clone)]
pub struct Snap {
    pub info: SnapshotInfo,
    pub shared_with: BTreeSet<String>,
    pub description: String,
}

/// Every account's snapshots, one instance, and the knobs tests turn.
#[derive(Debug, Default)]
pub struct Cloud {
    pub snapshots: BTreeMap<String, Snap>,
    pub next_id: u32,
    /// instance id -> (device -> (volume id, kms key or None))
    pub instances: BTreeMap<String, BTreeMap<String, (String, Option<String>)>>,
    pub aws_managed_keys: BTreeSet<String>,
    /// key -> accounts (besides its owner) that may use it
    pub key_users: BTreeMap<String, BTreeSet<String>>,
    /// operation -> error code to fail with
    pub failing: BTreeMap<&'static str, String>,
    /// (account, operation) -> error code to fail with, in that account only
    pub failing_in: BTreeMap<(String, &'static str), String>,
    /// operation -> (error code, how many more calls fail with it)
    pub failing_times: BTreeMap<&'static str, (String, u32)>,
    /// "account:operation" of every call
    pub calls: Vec<String>,
    /// Operations that take effect once and then answer with a 500, as if the answer was lost
    /// (or the process died before it recorded it).
    pub lost_answers: BTreeSet<&'static str>,
    /// Refuse DeleteSnapshot of a snapshot that no longer exists as access denied, as IAM does
    /// when a policy conditions the call on a tag the gone snapshot no longer has.
    pub deny_untagged: bool,
}

pub type Shared = Arc<Mutex<Cloud>>;

/// The member account of the fake cloud's instance.
pub const MEMBER: &str = "111111111111";
/// The forensic account.
pub const FORENSIC: &str = "123456789012";
/// The forensic EBS key.
pub const FORENSIC_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/forensic";

/// A plan for instance `i-1` of [`MEMBER`], case IR-1, with millisecond polling.
pub fn plan() -> crate::Plan {
    crate::Plan {
        case: forensnap_core::CaseId::parse("IR-1").expect("case"),
        member_account: MEMBER.into(),
        member_region: "us-east-1".into(),
        instance_id: "i-1".into(),
        forensic_account: FORENSIC.into(),
        forensic_key_arn: FORENSIC_KEY.into(),
        role_arn: "arn:aws:iam::111111111111:role/Collector".into(),
        session_name: "forensnap-IR-1".into(),
        source_identity: "IR-1".into(),
        member_tags: BTreeMap::new(),
        description: "forensnap IR-1".into(),
        reencrypt_always: false,
        max_concurrent_copies: 2,
        backoff: crate::wait::Backoff {
            initial: std::time::Duration::from_millis(1),
            max: std::time::Duration::from_millis(2),
            limit: std::time::Duration::from_secs(5),
        },
        tool: "test".into(),
        retention_days: 30,
    }
}

/// The fake cloud's member and forensic accounts, and the actor their tests record.
pub fn accounts(cloud: &Shared) -> (FakeEc2, FakeEc2, forensnap_core::Actor) {
    let account = |id: &str| FakeEc2 {
        cloud: cloud.clone(),
        account: id.into(),
    };
    let actor = forensnap_core::Actor {
        arn: "arn:aws:iam::123456789012:user/op".into(),
        operator: "op".into(),
    };
    (account(MEMBER), account(FORENSIC), actor)
}

fn err(operation: &'static str, code: &str) -> CloudError {
    CloudError::from_code(
        operation,
        code,
        format!("{code} (fake)"),
        Some("req-fake".into()),
    )
}

fn key_owner(key: &str) -> &str {
    key.split(':').nth(4).unwrap_or_default()
}

pub struct FakeEc2 {
    pub cloud: Shared,
    pub account: String,
}

impl FakeEc2 {
    fn call(
        &self,
        operation: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, Cloud>, CloudError> {
        let mut cloud = self.cloud.lock().expect("lock");
        cloud.calls.push(format!("{}:{operation}", self.account));
        if let Some(code) = cloud.failing.get(operation).cloned() {
            return Err(err(operation, &code));
        }
        if let Some(code) = cloud
            .failing_in
            .get(&(self.account.clone(), operation))
            .cloned()
        {
            return Err(err(operation, &code));
        }
        if let Some((code, left)) = cloud.failing_times.get_mut(operation)
            && *left > 0
        {
            *left -= 1;
            let code = code.clone();
            return Err(err(operation, &code));
        }
        Ok(cloud)
    }

    fn new_snapshot(
        &self,
        cloud: &mut Cloud,
        volume_id: &str,
        key: Option<String>,
        failure: Option<String>,
        description: &str,
    ) -> SnapshotInfo {
        let state = if failure.is_some() {
            SnapState::Error
        } else {
            SnapState::Completed
        };
        let message = failure;
        cloud.next_id += 1;
        let info = SnapshotInfo {
            id: format!("snap-{:04}", cloud.next_id),
            volume_id: volume_id.to_string(),
            state,
            progress: Some("100%".into()),
            message,
            encrypted: key.is_some(),
            kms_key_id: key,
            owner: self.account.clone(),
            // The collect tests' in-memory snapshots hold 32 MiB: 1 GiB as EC2 rounds it.
            volume_size_gib: 1,
            start_time: None,
        };
        let snap = Snap {
            info: info.clone(),
            shared_with: BTreeSet::new(),
            description: description.to_string(),
        };
        cloud.snapshots.insert(info.id.clone(), snap);
        info
    }
}

fn ok<T>(value: T) -> Result<Called<T>, CloudError> {
    Ok(Called::new(value, Some("req-fake".into())))
}

impl Ec2 for FakeEc2 {
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        "us-east-1"
    }
    async fn whoami(&self) -> Result<Called<String>, CloudError> {
        let _cloud = self.call("GetCallerIdentity")?;
        ok(format!(
            "arn:aws:sts::{}:assumed-role/Collector/forensnap-test",
            self.account
        ))
    }
    async fn describe_instance(
        &self,
        instance_id: &str,
    ) -> Result<Called<Option<InstanceRecord>>, CloudError> {
        let cloud = self.call("DescribeInstances")?;
        let record = cloud
            .instances
            .get(instance_id)
            .map(|volumes| InstanceRecord {
                instance_id: instance_id.to_string(),
                availability_zone: Some("us-east-1a".into()),
                volumes: volumes
                    .iter()
                    .map(|(d, (v, _))| (d.clone(), v.clone()))
                    .collect(),
                instance_type: Some("t3.micro".into()),
                platform: None,
                json: format!("{{\"instance_id\":\"{instance_id}\"}}").into_bytes(),
            });
        ok(record)
    }
    async fn console_output(&self, _: &str) -> Result<Called<Vec<u8>>, CloudError> {
        let _cloud = self.call("GetConsoleOutput")?;
        ok(b"login: ".to_vec())
    }
    async fn create_snapshots(
        &self,
        instance_id: &str,
        description: &str,
        _tags: &BTreeMap<String, String>,
    ) -> Result<Called<Vec<SnapshotInfo>>, CloudError> {
        let mut cloud = self.call("CreateSnapshots")?;
        let volumes = cloud
            .instances
            .get(instance_id)
            .cloned()
            .unwrap_or_default();
        let made = volumes
            .values()
            .map(|(v, key)| self.new_snapshot(&mut cloud, v, key.clone(), None, description))
            .collect();
        ok(made)
    }
    async fn describe_snapshot(
        &self,
        id: &str,
    ) -> Result<Called<Option<SnapshotInfo>>, CloudError> {
        let cloud = self.call("DescribeSnapshots")?;
        let found = cloud
            .snapshots
            .get(id)
            .filter(|s| s.info.owner == self.account || s.shared_with.contains(&self.account))
            .map(|s| s.info.clone());
        ok(found)
    }
    async fn find_snapshots(&self, description: &str) -> Result<Vec<SnapshotInfo>, CloudError> {
        let cloud = self.call("DescribeSnapshots")?;
        Ok(cloud
            .snapshots
            .values()
            .filter(|s| s.info.owner == self.account && s.description == description)
            .map(|s| s.info.clone())
            .collect())
    }
    async fn copy_snapshot(
        &self,
        source: &str,
        _: &str,
        key: &str,
        description: &str,
        _tags: &BTreeMap<String, String>,
    ) -> Result<Called<String>, CloudError> {
        let mut cloud = self.call("CopySnapshot")?;
        let Some(src) = cloud
            .snapshots
            .get(source)
            .filter(|s| s.info.owner == self.account || s.shared_with.contains(&self.account))
            .cloned()
        else {
            return Err(err("CopySnapshot", "InvalidSnapshot.NotFound"));
        };
        let usable = |k: &str, cloud: &Cloud| {
            key_owner(k) == self.account
                || cloud
                    .key_users
                    .get(k)
                    .is_some_and(|u| u.contains(&self.account))
        };
        let failure = match &src.info.kms_key_id {
            Some(k) if !usable(k, &cloud) => Some("Given key ID is not accessible".to_string()),
            _ if !usable(key, &cloud) => Some("Given key ID is not accessible".to_string()),
            _ => None,
        };
        let info = self.new_snapshot(
            &mut cloud,
            "vol-ffffffff",
            Some(key.to_string()),
            failure,
            description,
        );
        ok(info.id)
    }
    async fn set_share(
        &self,
        id: &str,
        account: &str,
        share: bool,
    ) -> Result<Called<()>, CloudError> {
        let mut cloud = self.call("ModifySnapshotAttribute")?;
        let managed = cloud.aws_managed_keys.clone();
        let snap = cloud
            .snapshots
            .get_mut(id)
            .filter(|s| s.info.owner == self.account)
            .ok_or_else(|| err("ModifySnapshotAttribute", "InvalidSnapshot.NotFound"))?;
        if share
            && snap
                .info
                .kms_key_id
                .as_ref()
                .is_some_and(|k| managed.contains(k))
        {
            return Err(err("ModifySnapshotAttribute", "OperationNotPermitted"));
        }
        if share {
            snap.shared_with.insert(account.to_string());
        } else {
            snap.shared_with.remove(account);
        }
        ok(())
    }
    async fn shared_with(&self, id: &str) -> Result<Called<Vec<String>>, CloudError> {
        let cloud = self.call("DescribeSnapshotAttribute")?;
        let snap = cloud
            .snapshots
            .get(id)
            .filter(|s| s.info.owner == self.account)
            .ok_or_else(|| err("DescribeSnapshotAttribute", "InvalidSnapshot.NotFound"))?;
        ok(snap.shared_with.iter().cloned().collect())
    }
    async fn delete_snapshot(&self, id: &str) -> Result<Called<()>, CloudError> {
        let mut cloud = self.call("DeleteSnapshot")?;
        if cloud.snapshots.remove(id).is_none() {
            let code = if cloud.deny_untagged {
                "UnauthorizedOperation"
            } else {
                "InvalidSnapshot.NotFound"
            };
            return Err(err("DeleteSnapshot", code));
        }
        if cloud.lost_answers.remove("DeleteSnapshot") {
            return Err(err("DeleteSnapshot", "InternalError"));
        }
        ok(())
    }
    async fn is_aws_managed_key(&self, key: &str) -> Result<bool, CloudError> {
        let cloud = self.call("DescribeKey")?;
        Ok(cloud.aws_managed_keys.contains(key))
    }
}
