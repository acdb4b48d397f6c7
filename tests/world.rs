//! The local world's seed refuses bad world files with a message that names the key and the fix.

use forensnap_tests::localworld::World;

fn seed_error(toml: &str) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("world.toml");
    std::fs::write(&file, toml).expect("write");
    let world = World::start().expect("start");
    world.seed(&file).expect_err("a bad world file").to_string()
}

const HEAD: &str =
    "region = \"us-east-1\"\n[forensic]\naccount = \"123456789012\"\nname_prefix = \"ev-bad\"\n";

#[test]
fn bad_world_files_name_the_key_and_the_fix() {
    let err = seed_error("region = \"us-east-1\"\n");
    assert!(err.contains("missing key 'forensic'"), "{err}");

    let err = seed_error(&format!(
        "{HEAD}[[members]]\naccount = \"111111111111\"\nexternal_id = \"ext-2026-forensnap\"\n[[members.instances]]\nname = \"a\"\n\
         [[members.instances.volumes]]\ndevice = \"/dev/xvda\"\nimage = \"a.img\"\nencryption = \"aes\"\nbuild = {{ kind = \"zeros\" }}\n"
    ));
    assert!(
        err.contains("encryption must be one of") && err.contains("'aes'"),
        "{err}"
    );

    let err = seed_error(&format!(
        "{HEAD}[[members]]\naccount = \"111111111111\"\nexternal_id = \"ext-2026-forensnap\"\n[[members.instances]]\nname = \"a\"\n\
         [[members.instances.volumes]]\ndevice = \"/dev/xvda\"\nimage = \"missing.img\"\n"
    ));
    assert!(
        err.contains("does not exist and the volume has no 'build' table"),
        "{err}"
    );

    let err = seed_error(&format!("{HEAD}[[members]]\naccount = \"111111111111\"\n"));
    assert!(err.contains("missing key 'external_id'"), "{err}");

    // The templates decide the bucket's name and want a 16-character ExternalId.
    let err = seed_error(
        "region = \"us-east-1\"\n[forensic]\naccount = \"123456789012\"\nevidence_bucket = \"ev-bad\"\n",
    );
    assert!(
        err.contains("evidence_bucket") && err.contains("set name_prefix instead"),
        "{err}"
    );
    let err = seed_error(&format!(
        "{HEAD}[[members]]\naccount = \"111111111111\"\nexternal_id = \"short\"\n"
    ));
    assert!(
        err.contains("'short' is shorter than the 16 characters member-role.yaml requires"),
        "{err}"
    );

    let err = seed_error("this is not toml = = \n");
    assert!(err.contains("is not valid TOML"), "{err}");
}

#[test]
fn a_hand_made_world_seeds_outside_us_east_1() {
    // S3 refuses a bucket without a LocationConstraint anywhere but us-east-1; the seed names it.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("world.toml");
    std::fs::write(
        &file,
        "region = \"eu-west-1\"\npolicies = false\n[forensic]\naccount = \"123456789012\"\n\
         evidence_bucket = \"ev-hand-eu\"\n[[members]]\naccount = \"111111111111\"\n\
         external_id = \"x\"\n[[members.instances]]\nname = \"a\"\n[[members.instances.volumes]]\n\
         device = \"/dev/xvda\"\nimage = \"a.img\"\nbuild = { kind = \"pattern\", blocks = 1 }\n",
    )
    .expect("write");
    let world = World::start().expect("start");
    let seeded = world.seed(&file).expect("seeded in eu-west-1");
    assert_eq!(seeded.region, "eu-west-1");
    assert_eq!(seeded.forensic.evidence_bucket, "ev-hand-eu");
    let config = std::fs::read_to_string(seeded.config.expect("config")).expect("read");
    assert!(config.contains("region = \"eu-west-1\""), "{config}");
}
