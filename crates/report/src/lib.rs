//! Custody reports that legal can file and machines can load: `forensnap report`.
//!
//! One [`CustodyReport`] is built from a fresh verification of the case (the custody events,
//! checkpoints, bags and Object Lock states it read) and the config's matter and personnel;
//! it is then rendered as
//! * a PDF/A-3b document ([`pdf`]): cover, personnel, scope and method, evidence inventory,
//!   custody log with a timeline, integrity verification, gaps, a draft FRE 902(14) / 28 U.S.C.
//!   § 1746 declaration (never signed by the tool), and appendices; the machine-readable files
//!   are attached to it byte for byte;
//! * CSV ([`tables`]): evidence items and custody events, RFC 4180, for e-discovery loads;
//! * JSON ([`tables::report_json`]): the whole model, schema [`REPORT_SCHEMA`].
//!
//! Everything is deterministic: the same case, verification and generation time give the same
//! bytes in every format. No AWS, no clock and no file system here: the caller reads the case,
//! verifies it, says what time it is, and stores what this returns.

pub mod model;
pub mod pdf;
pub mod tables;

pub use model::{CustodyReport, PersonMapping, REPORT_SCHEMA, ReportInput, Tool, VerificationMode};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The bundled fonts are missing a face (a build problem).
    #[error("the report fonts bundled with forensnap are incomplete: rebuild forensnap")]
    Fonts,
    /// The PDF writer refused (a PDF/A rule the content broke).
    #[error("writing the PDF/A-3b report failed: {0}")]
    Pdf(String),
}

/// A file attached to the PDF (and written beside it by the CSV and JSON formats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name.
    pub name: String,
    /// MIME type.
    pub mime: &'static str,
    /// What it holds.
    pub description: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// SHA-256 of its bytes, hex.
    pub fn sha256(&self) -> String {
        forensnap_core::sha256_hex(&self.bytes)
    }
}

/// File name of the custody events as JSON lines.
pub const EVENTS_JSONL: &str = "custody-events.jsonl";
/// File name of the verification result.
pub const VERIFICATION_JSON: &str = "verification.json";
/// File name of the trusted public key.
pub const PUBLIC_KEY_PEM: &str = "signing-key.pem";
/// File name of the JSON report.
pub const REPORT_JSON: &str = "custody-report.json";

/// A report and the files that travel with it.
#[derive(Debug, Clone)]
pub struct Report {
    /// The content.
    pub report: CustodyReport,
    /// The machine-readable files: the CSVs, the JSON report, the events, the verification and
    /// the key.
    pub attachments: Vec<Attachment>,
}

impl Report {
    /// Build the report from `input`.
    pub fn build(input: &ReportInput<'_>) -> Report {
        let report = CustodyReport::build(input);
        let facts = &input.verification.facts;
        let mut events = Vec::new();
        for read in &facts.events {
            // Each line is the event's stored bytes: its SHA-256 is the one the chain links.
            events.extend(&read.bytes);
            if !read.bytes.ends_with(b"\n") {
                events.push(b'\n');
            }
        }
        let mut verification = serde_json::to_vec_pretty(input.verification)
            .expect("a verification always serialises");
        verification.push(b'\n');
        let attachments = vec![
            Attachment {
                name: tables::ITEMS_CSV.into(),
                mime: "text/csv",
                description: "Evidence inventory, one row per item (RFC 4180 CSV)".into(),
                bytes: tables::items_csv(&report),
            },
            Attachment {
                name: tables::EVENTS_CSV.into(),
                mime: "text/csv",
                description: "Custody events, one row per event (RFC 4180 CSV)".into(),
                bytes: tables::events_csv(&report),
            },
            Attachment {
                name: EVENTS_JSONL.into(),
                mime: "application/jsonl",
                description: "Custody events as stored, one per line: each line's SHA-256 is the event's in the chain".into(),
                bytes: events,
            },
            Attachment {
                name: VERIFICATION_JSON.into(),
                mime: "application/json",
                description: "The verification this report states (forensnap verify --output json)"
                    .into(),
                bytes: verification,
            },
            Attachment {
                name: PUBLIC_KEY_PEM.into(),
                mime: "application/x-pem-file",
                description: "The public key signatures were checked with (PEM)".into(),
                bytes: input.public_key_pem.as_bytes().to_vec(),
            },
            Attachment {
                name: REPORT_JSON.into(),
                mime: "application/json",
                description: format!("This report as JSON (schema {REPORT_SCHEMA})"),
                bytes: tables::report_json(&report),
            },
        ];
        Report {
            report,
            attachments,
        }
    }

    /// The attachment named `name`.
    pub fn attachment(&self, name: &str) -> Option<&Attachment> {
        self.attachments.iter().find(|a| a.name == name)
    }

    /// The PDF/A-3b document, with every attachment embedded.
    pub fn pdf(&self) -> Result<Vec<u8>, ReportError> {
        pdf::render(&self.report, &self.attachments)
    }
}
