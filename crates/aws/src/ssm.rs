//! [`forensnap_ports::Ssm`] over SSM RunCommand and EC2 DescribeInstanceTypes in a member
//! account: the instance's agent registration, forensnap's document (its hash pinned on
//! SendCommand), the command's invocation.

use std::collections::BTreeMap;

use aws_sdk_ssm::operation::RequestId;
use aws_sdk_ssm::types::{DocumentHashType, InstanceInformationStringFilter};
use forensnap_ports::{Called, CloudError, DocumentInfo, Invocation, ManagedInstance, Ssm};
use forensnap_store::ErrorKind;

use crate::errors::aws_error;

/// SSM and the EC2 instance-type facts of one member account and region.
#[derive(Clone, Debug)]
pub struct SdkSsm {
    ssm: aws_sdk_ssm::Client,
    ec2: aws_sdk_ec2::Client,
}

impl SdkSsm {
    /// SSM of `sdk`'s account and region, with `ec2` of the same.
    pub fn new(sdk: &aws_config::SdkConfig, ec2: aws_sdk_ec2::Client) -> SdkSsm {
        SdkSsm {
            ssm: aws_sdk_ssm::Client::new(sdk),
            ec2,
        }
    }
}

impl Ssm for SdkSsm {
    async fn instance_information(
        &self,
        instance_id: &str,
    ) -> Result<Option<ManagedInstance>, CloudError> {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .values(instance_id)
            .build()
            .map_err(|e| {
                CloudError::new(
                    ErrorKind::Invalid,
                    "DescribeInstanceInformation",
                    e.to_string(),
                )
            })?;
        let output = self
            .ssm
            .describe_instance_information()
            .filters(filter)
            .send()
            .await
            .map_err(|e| aws_error("DescribeInstanceInformation", e))?;
        Ok(output
            .instance_information_list()
            .iter()
            .find(|i| i.instance_id() == Some(instance_id))
            .map(|i| ManagedInstance {
                ping_status: i
                    .ping_status()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
                platform_type: i.platform_type().map(|p| p.as_str().to_string()),
                agent_version: i.agent_version().map(str::to_string),
            }))
    }

    async fn memory_mib(&self, instance_type: &str) -> Result<u64, CloudError> {
        let output = self
            .ec2
            .describe_instance_types()
            .instance_types(aws_sdk_ec2::types::InstanceType::from(instance_type))
            .send()
            .await
            .map_err(|e| aws_error("DescribeInstanceTypes", e))?;
        output
            .instance_types()
            .first()
            .and_then(|t| t.memory_info())
            .and_then(|m| m.size_in_mib())
            .and_then(|mib| u64::try_from(mib).ok())
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::NotFound,
                    "DescribeInstanceTypes",
                    format!("no memory size is known for instance type {instance_type}"),
                )
            })
    }

    async fn document(&self, name: &str) -> Result<DocumentInfo, CloudError> {
        let output = self
            .ssm
            .describe_document()
            .name(name)
            .send()
            .await
            .map_err(|e| aws_error("DescribeDocument", e))?;
        let doc = output.document();
        Ok(DocumentInfo {
            version: doc.and_then(|d| d.document_version()).map(str::to_string),
            hash: doc.and_then(|d| d.hash()).map(str::to_string),
        })
    }

    async fn send_command(
        &self,
        document: &str,
        document_hash: Option<&str>,
        instance_id: &str,
        parameters: &BTreeMap<String, String>,
        timeout_seconds: u32,
        comment: &str,
    ) -> Result<Called<String>, CloudError> {
        let mut request = self
            .ssm
            .send_command()
            .document_name(document)
            .instance_ids(instance_id)
            .timeout_seconds(i32::try_from(timeout_seconds).unwrap_or(i32::MAX))
            .comment(comment);
        if let Some(hash) = document_hash {
            request = request
                .document_hash(hash)
                .document_hash_type(DocumentHashType::Sha256);
        }
        for (name, value) in parameters {
            request = request.parameters(name, vec![value.clone()]);
        }
        let output = request
            .send()
            .await
            .map_err(|e| aws_error("SendCommand", e))?;
        let request_id = output.request_id().map(str::to_string);
        let command_id = output
            .command()
            .and_then(|c| c.command_id())
            .map(str::to_string)
            .ok_or_else(|| {
                CloudError::new(
                    ErrorKind::Other,
                    "SendCommand",
                    "the answer names no command id",
                )
            })?;
        Ok(Called::new(command_id, request_id))
    }

    async fn invocation(
        &self,
        command_id: &str,
        instance_id: &str,
    ) -> Result<Invocation, CloudError> {
        let output = self
            .ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance_id)
            .send()
            .await
            .map_err(|e| aws_error("GetCommandInvocation", e))?;
        Ok(Invocation {
            status: output
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            response_code: Some(i64::from(output.response_code())),
            stdout: output
                .standard_output_content()
                .unwrap_or_default()
                .to_string(),
            stderr: output
                .standard_error_content()
                .unwrap_or_default()
                .to_string(),
            started: output.execution_start_date_time().map(str::to_string),
            ended: output.execution_end_date_time().map(str::to_string),
        })
    }
}
