//! [`RequestQueue`] over SQS: the request queue (long polling, visibility extended by the
//! daemon's heartbeat) and its dead-letter queue, which receives what cannot be collected with
//! its reason as message attributes (`forensnap-reason-code`, `forensnap-reason`).

use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use forensnap_ports::queue::{Depth, Message, RequestQueue};
use forensnap_store::{CloudError, ErrorKind};

use crate::errors::aws_error;

/// SQS attribute values are limited to 256 KiB in all; reasons are cut well below.
const MAX_REASON: usize = 4096;

/// The request queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    dead_letter_url: String,
}

impl SqsQueue {
    /// The queue at `url`, dead-lettering into `dead_letter_url`.
    pub fn new(client: aws_sdk_sqs::Client, url: &str, dead_letter_url: &str) -> Self {
        SqsQueue {
            client,
            url: url.to_string(),
            dead_letter_url: dead_letter_url.to_string(),
        }
    }

    async fn count(&self, url: &str) -> Result<(u64, u64), CloudError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| aws_error("GetQueueAttributes", e))?;
        let get = |name: &QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok((
            get(&QueueAttributeName::ApproximateNumberOfMessages),
            get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn attribute(value: &str) -> Result<MessageAttributeValue, CloudError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| CloudError::new(ErrorKind::Invalid, "SendMessage", e.to_string()))
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl RequestQueue for SqsQueue {
    fn name(&self) -> &str {
        &self.url
    }

    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, CloudError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(seconds(wait).clamp(0, 20))
            .visibility_timeout(seconds(visibility))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| aws_error("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                let attr = |name: &MessageSystemAttributeName| {
                    m.attributes()
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.parse::<u64>().ok())
                };
                Some(Message {
                    id: m.message_id()?.to_string(),
                    receipt: m.receipt_handle()?.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    receive_count: attr(&MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| u32::try_from(c).ok())
                        .unwrap_or(1),
                    sent_ms: attr(&MessageSystemAttributeName::SentTimestamp),
                })
            })
            .collect())
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), CloudError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds(visibility))
            .send()
            .await
            .map_err(|e| aws_error("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), CloudError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| aws_error("DeleteMessage", e))?;
        Ok(())
    }

    async fn send(&self, body: &str) -> Result<String, CloudError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| aws_error("SendMessage", e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    async fn dead_letter(
        &self,
        message: &Message,
        code: &str,
        reason: &str,
    ) -> Result<(), CloudError> {
        self.client
            .send_message()
            .queue_url(&self.dead_letter_url)
            .message_body(&message.body)
            .message_attributes("forensnap-reason-code", attribute(code)?)
            .message_attributes("forensnap-reason", attribute(cut(reason, MAX_REASON))?)
            .message_attributes("forensnap-message-id", attribute(&message.id)?)
            .send()
            .await
            .map_err(|e| aws_error("SendMessage", e))?;
        self.delete(&message.receipt).await
    }

    async fn depth(&self) -> Result<Depth, CloudError> {
        let (waiting, in_flight) = self.count(&self.url).await?;
        let (dead, dead_hidden) = self.count(&self.dead_letter_url).await?;
        Ok(Depth {
            waiting,
            in_flight,
            dead_letters: dead + dead_hidden,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("aé", 2), "a");
    }
}
