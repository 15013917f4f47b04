//! Bad `--attest` values are usage errors, before anything runs.

use super::*;

#[test]
fn bad_attest_values_are_usage_errors() {
    let tmp = tempdir();
    let out = tmp.path().join("out");
    let refused =
        |extra: &[&str], options: &str, env: &[(&str, &str)], mention: &str, words: &[&str]| {
            let mut args = vec!["export".to_owned(), path_str(&sample_image()).to_owned()];
            args.extend(extra.iter().map(|s| s.to_string()));
            args.push("--output".into());
            args.push(format!(
                "type=oci,{options}dest={}",
                path_str(&out.join("x.tar"))
            ));
            let cache = tempdir();
            let run = outport_with_cache(args, cache.path(), env);
            run.assert_code(2);
            run.assert_error(&[mention], words);
            assert_eq!(run.error_text().lines().count(), 1, "{}", run.describe());
            assert_empty_or_absent(&out);
        };
    let epoch = [("SOURCE_DATE_EPOCH", EPOCH)];
    refused(
        &["--attest", "sbom"],
        "",
        &epoch,
        "sbom",
        &["not supported"],
    );
    refused(
        &["--attest", "type=provenance,mode=full"],
        "",
        &epoch,
        "mode",
        &["expected min or max"],
    );
    refused(
        &["--attest", "provenance,colour=red"],
        "",
        &epoch,
        "colour",
        &["unknown"],
    );
    refused(
        &[],
        "attest=maybe,",
        &epoch,
        "attest",
        &["expected true or false"],
    );
    refused(
        &["--attest", "provenance"],
        "",
        &[("SOURCE_DATE_EPOCH", "yesterday")],
        "SOURCE_DATE_EPOCH",
        &["expected a number"],
    );
}
