//! [`Ec2`] over the AWS SDK: EC2 for snapshots and instances, KMS to recognise AWS managed keys,
//! STS to learn (and, for member sessions, establish) the caller.

use std::collections::BTreeMap;

use aws_sdk_ec2::operation::RequestId;
use aws_sdk_ec2::types::{
    CreateVolumePermission, CreateVolumePermissionModifications, Filter, InstanceSpecification,
    ResourceType, Snapshot, SnapshotState, Tag, TagSpecification,
};
use aws_smithy_types::date_time::Format;
use base64::Engine;
use forensnap_ports::{Called, CloudError, Ec2, InstanceRecord, SnapState, SnapshotInfo};
use forensnap_store::ErrorKind;
use serde_json::{Value, json};

use crate::Clients;
use crate::errors::aws_error;

/// EC2 of one account and region.
#[derive(Debug, Clone)]
pub struct SdkEc2 {
    /// The account's clients.
    clients: Clients,
    /// Account id.
    account: String,
    /// Region.
    region: String,
}

impl SdkEc2 {
    /// EC2 of `account` in `region` through `clients`.
    pub fn new(clients: Clients, account: &str, region: &str) -> Self {
        SdkEc2 {
            clients,
            account: account.to_string(),
            region: region.to_string(),
        }
    }
}

fn info(s: &Snapshot) -> SnapshotInfo {
    SnapshotInfo {
        id: s.snapshot_id().unwrap_or_default().to_string(),
        volume_id: s.volume_id().unwrap_or_default().to_string(),
        state: match s.state() {
            Some(SnapshotState::Completed) => SnapState::Completed,
            Some(SnapshotState::Error) | Some(SnapshotState::Recoverable) => SnapState::Error,
            _ => SnapState::Pending,
        },
        progress: s.progress().map(str::to_string),
        message: s.state_message().map(str::to_string),
        encrypted: s.encrypted().unwrap_or(false),
        kms_key_id: s.kms_key_id().map(str::to_string),
        owner: s.owner_id().unwrap_or_default().to_string(),
        volume_size_gib: s.volume_size().unwrap_or_default().max(0) as u64,
        start_time: s.start_time().and_then(|t| t.fmt(Format::DateTime).ok()),
    }
}

fn tags(tags: &BTreeMap<String, String>) -> Option<TagSpecification> {
    if tags.is_empty() {
        return None;
    }
    let list = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    Some(
        TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .set_tags(Some(list))
            .build(),
    )
}

fn time(t: Option<&aws_smithy_types::DateTime>) -> Value {
    t.and_then(|t| t.fmt(Format::DateTime).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

/// The instance as a JSON record: what responders and examiners look at first.
fn instance_json(
    i: &aws_sdk_ec2::types::Instance,
    owner: Option<&str>,
    request_id: Option<&str>,
) -> Value {
    json!({
        "record": "ec2:DescribeInstances",
        "request_id": request_id,
        "owner_id": owner,
        "instance_id": i.instance_id(),
        "instance_type": i.instance_type().map(|t| t.as_str()),
        "state": i.state().and_then(|s| s.name()).map(|n| n.as_str()),
        "launch_time": time(i.launch_time()),
        "image_id": i.image_id(),
        "key_name": i.key_name(),
        "availability_zone": i.placement().and_then(|p| p.availability_zone()),
        "vpc_id": i.vpc_id(),
        "subnet_id": i.subnet_id(),
        "private_ip_address": i.private_ip_address(),
        "public_ip_address": i.public_ip_address(),
        "private_dns_name": i.private_dns_name(),
        "public_dns_name": i.public_dns_name(),
        "iam_instance_profile": i.iam_instance_profile().and_then(|p| p.arn()),
        "root_device_name": i.root_device_name(),
        "platform_details": i.platform_details(),
        "security_groups": i.security_groups().iter().map(|g| json!({"id": g.group_id(), "name": g.group_name()})).collect::<Vec<_>>(),
        "tags": i.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), Value::from(t.value().unwrap_or_default()))).collect::<serde_json::Map<_, _>>(),
        "block_device_mappings": i.block_device_mappings().iter().map(|b| json!({
            "device_name": b.device_name(),
            "volume_id": b.ebs().and_then(|e| e.volume_id()),
            "attach_time": time(b.ebs().and_then(|e| e.attach_time())),
            "delete_on_termination": b.ebs().and_then(|e| e.delete_on_termination()),
            "status": b.ebs().and_then(|e| e.status()).map(|s| s.as_str()),
        })).collect::<Vec<_>>(),
        "network_interfaces": i.network_interfaces().iter().map(|n| json!({
            "id": n.network_interface_id(),
            "mac_address": n.mac_address(),
            "private_ip_addresses": n.private_ip_addresses().iter().map(|a| a.private_ip_address()).collect::<Vec<_>>(),
            "subnet_id": n.subnet_id(),
        })).collect::<Vec<_>>(),
        "metadata_options": i.metadata_options().map(|m| json!({
            "http_tokens": m.http_tokens().map(|t| t.as_str()),
            "http_endpoint": m.http_endpoint().map(|t| t.as_str()),
        })),
    })
}

impl Ec2 for SdkEc2 {
    fn account(&self) -> &str {
        &self.account
    }

    fn region(&self) -> &str {
        &self.region
    }

    async fn whoami(&self) -> Result<Called<String>, CloudError> {
        let out = self
            .clients
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_error("GetCallerIdentity", e))?;
        let request_id = out.request_id().map(str::to_string);
        if out.account() != Some(self.account.as_str()) {
            return Err(CloudError {
                kind: ErrorKind::Denied,
                operation: "GetCallerIdentity",
                code: Some("WrongAccount".into()),
                message: format!(
                    "the credentials act in account {:?}, not {}",
                    out.account(),
                    self.account
                ),
                request_id,
            });
        }
        Ok(Called::new(
            out.arn().unwrap_or_default().to_string(),
            request_id,
        ))
    }

    async fn describe_instance(
        &self,
        instance_id: &str,
    ) -> Result<Called<Option<InstanceRecord>>, CloudError> {
        let out = match self
            .clients
            .ec2
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = aws_error("DescribeInstances", e);
                if err
                    .code
                    .as_deref()
                    .is_some_and(|c| c.starts_with("InvalidInstanceID"))
                {
                    return Ok(Called::new(None, err.request_id));
                }
                return Err(err);
            }
        };
        let request_id = out.request_id().map(str::to_string);
        let found = out.reservations().iter().find_map(|r| {
            r.instances()
                .iter()
                .find(|i| i.instance_id() == Some(instance_id))
                .map(|i| (r.owner_id(), i))
        });
        let Some((owner, instance)) = found else {
            return Ok(Called::new(None, request_id));
        };
        let volumes = instance
            .block_device_mappings()
            .iter()
            .filter_map(|b| {
                Some((
                    b.device_name()?.to_string(),
                    b.ebs()?.volume_id()?.to_string(),
                ))
            })
            .collect();
        let mut json =
            serde_json::to_vec_pretty(&instance_json(instance, owner, request_id.as_deref()))
                .unwrap_or_default();
        json.push(b'\n');
        let record = InstanceRecord {
            instance_id: instance_id.to_string(),
            availability_zone: instance
                .placement()
                .and_then(|p| p.availability_zone())
                .map(str::to_string),
            volumes,
            instance_type: instance.instance_type().map(|t| t.as_str().to_string()),
            platform: instance.platform().map(|p| p.as_str().to_string()),
            json,
        };
        Ok(Called::new(Some(record), request_id))
    }

    async fn console_output(&self, instance_id: &str) -> Result<Called<Vec<u8>>, CloudError> {
        let out = self
            .clients
            .ec2
            .get_console_output()
            .instance_id(instance_id)
            .send()
            .await
            .map_err(|e| aws_error("GetConsoleOutput", e))?;
        let text = out.output().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap_or_else(|_| text.as_bytes().to_vec());
        Ok(Called::new(bytes, out.request_id().map(str::to_string)))
    }

    async fn create_snapshots(
        &self,
        instance_id: &str,
        description: &str,
        tag_map: &BTreeMap<String, String>,
    ) -> Result<Called<Vec<SnapshotInfo>>, CloudError> {
        let out = self
            .clients
            .ec2
            .create_snapshots()
            .instance_specification(
                InstanceSpecification::builder()
                    .instance_id(instance_id)
                    .exclude_boot_volume(false)
                    .build(),
            )
            .description(description)
            .set_tag_specifications(tags(tag_map).map(|t| vec![t]))
            .send()
            .await
            .map_err(|e| aws_error("CreateSnapshots", e))?;
        let snapshots = out
            .snapshots()
            .iter()
            .map(|s| SnapshotInfo {
                id: s.snapshot_id().unwrap_or_default().to_string(),
                volume_id: s.volume_id().unwrap_or_default().to_string(),
                state: SnapState::Pending,
                progress: s.progress().map(str::to_string),
                message: None,
                encrypted: s.encrypted().unwrap_or(false),
                kms_key_id: None,
                owner: s.owner_id().unwrap_or_default().to_string(),
                volume_size_gib: s.volume_size().unwrap_or_default().max(0) as u64,
                start_time: s.start_time().and_then(|t| t.fmt(Format::DateTime).ok()),
            })
            .collect();
        Ok(Called::new(snapshots, out.request_id().map(str::to_string)))
    }

    async fn describe_snapshot(
        &self,
        snapshot_id: &str,
    ) -> Result<Called<Option<SnapshotInfo>>, CloudError> {
        match self
            .clients
            .ec2
            .describe_snapshots()
            .snapshot_ids(snapshot_id)
            .send()
            .await
        {
            Ok(out) => {
                let found = out
                    .snapshots()
                    .iter()
                    .find(|s| s.snapshot_id() == Some(snapshot_id))
                    .map(info);
                Ok(Called::new(found, out.request_id().map(str::to_string)))
            }
            Err(e) => {
                let err = aws_error("DescribeSnapshots", e);
                if err.is_not_found() {
                    Ok(Called::new(None, err.request_id))
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn find_snapshots(&self, description: &str) -> Result<Vec<SnapshotInfo>, CloudError> {
        let out = self
            .clients
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name("description")
                    .values(description)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error("DescribeSnapshots", e))?;
        Ok(out.snapshots().iter().map(info).collect())
    }

    async fn copy_snapshot(
        &self,
        source: &str,
        source_region: &str,
        kms_key_id: &str,
        description: &str,
        tag_map: &BTreeMap<String, String>,
    ) -> Result<Called<String>, CloudError> {
        let out = self
            .clients
            .ec2
            .copy_snapshot()
            .source_snapshot_id(source)
            .source_region(source_region)
            .encrypted(true)
            .kms_key_id(kms_key_id)
            .description(description)
            .set_tag_specifications(tags(tag_map).map(|t| vec![t]))
            .send()
            .await
            .map_err(|e| aws_error("CopySnapshot", e))?;
        Ok(Called::new(
            out.snapshot_id().unwrap_or_default().to_string(),
            out.request_id().map(str::to_string),
        ))
    }

    async fn shared_with(&self, snapshot_id: &str) -> Result<Called<Vec<String>>, CloudError> {
        let out = self
            .clients
            .ec2
            .describe_snapshot_attribute()
            .snapshot_id(snapshot_id)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .map_err(|e| aws_error("DescribeSnapshotAttribute", e))?;
        let accounts = out
            .create_volume_permissions()
            .iter()
            .filter_map(|p| {
                p.user_id()
                    .map(str::to_string)
                    .or_else(|| p.group().map(|g| g.as_str().to_string()))
            })
            .collect();
        Ok(Called::new(accounts, out.request_id().map(str::to_string)))
    }

    async fn set_share(
        &self,
        snapshot_id: &str,
        account: &str,
        share: bool,
    ) -> Result<Called<()>, CloudError> {
        let permission = CreateVolumePermission::builder().user_id(account).build();
        let change = if share {
            CreateVolumePermissionModifications::builder()
                .add(permission)
                .build()
        } else {
            CreateVolumePermissionModifications::builder()
                .remove(permission)
                .build()
        };
        let out = self
            .clients
            .ec2
            .modify_snapshot_attribute()
            .snapshot_id(snapshot_id)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .operation_type(if share {
                aws_sdk_ec2::types::OperationType::Add
            } else {
                aws_sdk_ec2::types::OperationType::Remove
            })
            .user_ids(account)
            .create_volume_permission(change)
            .send()
            .await
            .map_err(|e| aws_error("ModifySnapshotAttribute", e))?;
        Ok(Called::new((), out.request_id().map(str::to_string)))
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<Called<()>, CloudError> {
        let out = self
            .clients
            .ec2
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map_err(|e| aws_error("DeleteSnapshot", e))?;
        Ok(Called::new((), out.request_id().map(str::to_string)))
    }

    async fn is_aws_managed_key(&self, key_id: &str) -> Result<bool, CloudError> {
        let described = self
            .clients
            .kms
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| aws_error("DescribeKey", e))?;
        // AWS sets KeyManager on every key; `AWS` is an AWS managed key such as aws/ebs (which
        // cannot be shared). No ListAliases: the member role is not granted it.
        Ok(described.key_metadata().and_then(|m| m.key_manager())
            == Some(&aws_sdk_kms::types::KeyManagerType::Aws))
    }
}
