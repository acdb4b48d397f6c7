//! VERIFY.md, the guide in every bag for an auditor who does not trust forensnap: the exact
//! commands that check the bag, its signature and the disk image, and what each proves
//! ([`verify_md`] of a [`VerifyGuide`]).

use crate::bag::shell::shell_word;

/// What VERIFY.md says about one item.
#[derive(Debug, Clone, Copy)]
pub struct VerifyGuide<'a> {
    /// Evidence item id.
    pub item_id: &'a str,
    /// Case id.
    pub case: &'a str,
    /// What the item holds (`volume`, `instance-record`, ...).
    pub kind: &'a str,
    /// ARN of the KMS key that signed the tag manifest.
    pub signing_key_arn: &'a str,
    /// [`fingerprint`](super::fingerprint) of its public key.
    pub public_key_sha256: &'a str,
    /// SHA-256 of the raw disk image, for volumes.
    pub image_sha256: Option<&'a str>,
    /// Blocks layout: `rebuild.sh` rebuilds the image.
    pub rebuild: bool,
    /// Raw layout: the image's path in the bag (`data/disk.raw`).
    pub raw_image_path: Option<&'a str>,
}

/// `VERIFY.md`: for someone who does not trust forensnap, the exact commands, run from the bag
/// root, that check the bag, its signature and (for volumes) the disk image, and what each
/// proves.
pub fn verify_md(guide: &VerifyGuide<'_>) -> String {
    let VerifyGuide {
        item_id,
        case,
        kind,
        signing_key_arn,
        public_key_sha256,
        image_sha256,
        rebuild,
        raw_image_path,
    } = *guide;
    let arn = shell_word(signing_key_arn);
    let mut md = format!(
        "# Verifying evidence item `{item_id}`

Case `{case}`, evidence item `{item_id}` ({kind}), preserved by forensnap.

You do not need forensnap, or to trust it, to check this evidence: every step below uses common
tools (`sha256sum` from GNU coreutils, OpenSSL, the AWS CLI and `bagit` from PyPI), and each must
pass. Run the commands from the bag root, the directory that holds this file and `bagit.txt`.

## 1. Every file is the one that was sealed

```sh
sha256sum -c tagmanifest-sha256.txt
sha256sum -c manifest-sha256.txt
```

Every line must end in `OK`.

## 2. The bag is a complete, valid BagIt bag

```sh
python3 -m pip install bagit
bagit.py --validate .
```

It must report the bag valid.

## 3. The tag manifest is signed by the case's KMS key

`signing-key.pem` is the public half of the KMS key `{signing_key_arn}`. Its fingerprint:

```sh
openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum
```

must print `{public_key_sha256}  -`. AWS itself must give the same (with credentials allowed
`kms:GetPublicKey` on the key):

```sh
aws kms get-public-key --key-id {arn} --query PublicKey --output text | base64 -d | sha256sum
```

Then the signature:

```sh
openssl dgst -sha256 -verify signing-key.pem -signature tagmanifest-sha256.txt.sig tagmanifest-sha256.txt
```

must print `Verified OK`.
"
    );
    let image_hash = image_sha256.map_or_else(
        || "the SHA-256 in `data/image.sha256`".to_string(),
        |hash| format!("`{hash}`"),
    );
    let streamed = image_sha256.map_or_else(
        || "the SHA-256 in `data/image.sha256`, followed by `  -`".to_string(),
        |hash| format!("`{hash}  -`"),
    );
    let has_image = if rebuild {
        md.push_str(&format!(
            "
## 4. The disk image is the volume's

The payload keeps only the blocks EBS listed for the snapshot; `rebuild.sh` (POSIX `sh` and `dd`)
rebuilds the raw image, blocks not listed as zeros. With room for the whole volume:

```sh
sh rebuild.sh disk.raw && sha256sum -c data/image.sha256
```

must print `disk.raw: OK`. Without the disk space, stream the image instead:

```sh
sh rebuild.sh - | sha256sum
```

must print {streamed}.
"
        ));
        true
    } else if let Some(path) = raw_image_path {
        md.push_str(&format!(
            "
## 4. The disk image is the volume's

The payload holds the raw image itself, `{path}`, zero runs included:

```sh
sha256sum -c data/image.sha256
```

must print `{path}: OK`: the image hashes {image_hash}.
"
        ));
        true
    } else {
        false
    };
    md.push_str(
        "
## What each step proves

* Step 1: `tagmanifest-sha256.txt` lists the SHA-256 of every tag file (`bag-info.txt`,
  `manifest-sha256.txt`, this file and the rest), and `manifest-sha256.txt` that of every payload
  file under `data/`; together they cover every byte of the evidence.
* Step 2: an independent BagIt implementation agrees, and finds no payload file missing or
  unlisted (`Payload-Oxum` in `bag-info.txt` gives their total size and count).
* Step 3: the signature ties the tag manifest, and through it every file, to the KMS key, whose
  private half never leaves KMS: only a principal allowed `kms:Sign` on that key could have made
  it. The fingerprint checks make sure `signing-key.pem` is that key and not one put in its place.
",
    );
    if has_image {
        md.push_str(
            "* Step 4: the image hash equals `sha256sum` of the original raw disk, zero runs
  included (what hashing a `dd` image of the whole volume gives), so it can be compared with any
  other image of the volume.
",
        );
    }
    md.push_str(&format!(
        "
The case's signed custody checkpoints (`cases/{case}/custody/checkpoints/`) list this item with
the SHA-256 of its `tagmanifest-sha256.txt`; `sha256sum tagmanifest-sha256.txt` must print it.

The `acquisition/` folder, where present, is forensnap's resume state for an interrupted upload:
it is not evidence, is not listed in the manifests and plays no part in these checks.
"
    ));
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Signer as _;
    use crate::seal::fingerprint;
    use crate::seal::memory::fixtures::{ARN, signer};

    #[test]
    fn verify_md_gives_every_command_and_value() {
        let fp = fingerprint(signer().public_key_der());
        let image = "ab".repeat(32);
        let guide = VerifyGuide {
            item_id: "vol-0abc",
            case: "IR-1",
            kind: "volume",
            signing_key_arn: ARN,
            public_key_sha256: &fp,
            image_sha256: Some(&image),
            rebuild: true,
            raw_image_path: None,
        };
        let md = verify_md(&guide);
        for needed in [
            fp.as_str(),
            ARN,
            image.as_str(),
            "sha256sum -c tagmanifest-sha256.txt",
            "sha256sum -c manifest-sha256.txt",
            "bagit.py --validate .",
            "openssl pkey -pubin -in signing-key.pem -outform DER | sha256sum",
            &format!(
                "aws kms get-public-key --key-id {ARN} --query PublicKey --output text | base64 -d | sha256sum"
            ),
            "openssl dgst -sha256 -verify signing-key.pem -signature tagmanifest-sha256.txt.sig tagmanifest-sha256.txt",
            "Verified OK",
            "sh rebuild.sh disk.raw && sha256sum -c data/image.sha256",
            "sh rebuild.sh - | sha256sum",
            "acquisition/",
            "zero runs",
        ] {
            assert!(md.contains(needed), "VERIFY.md lacks {needed:?}:\n{md}");
        }
        assert_eq!(md.matches("```sh").count(), 7, "{md}");
        assert_eq!(md.matches("```").count() % 2, 0, "fences are closed");

        let raw = verify_md(&VerifyGuide {
            rebuild: false,
            raw_image_path: Some("data/disk.raw"),
            ..guide
        });
        assert!(raw.contains("sha256sum -c data/image.sha256") && raw.contains(&image));
        assert!(!raw.contains("rebuild.sh"));

        let record = verify_md(&VerifyGuide {
            kind: "instance-record",
            image_sha256: None,
            rebuild: false,
            raw_image_path: None,
            ..guide
        });
        assert!(!record.contains("## 4.") && !record.contains("image.sha256"));
        assert!(record.contains("Verified OK"));

        let odd = verify_md(&VerifyGuide {
            signing_key_arn: "alias/it's",
            ..guide
        });
        assert!(odd.contains("--key-id 'alias/it'\\''s'"), "{odd}");
    }
}
