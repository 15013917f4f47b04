//! The Azurite endpoint `scripts/test-services` started, a lister of its
//! blobs that signs its own requests (a separate Shared Key implementation,
//! in Python's standard library), and the commands the tests run.

use std::path::Path;

use crate::common::*;

/// The account URL, name and key of the test Azurite.
pub(super) struct Azurite {
    pub(super) url: String,
    pub(super) account: String,
    pub(super) key: String,
}

pub(super) fn azurite() -> Azurite {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: the azblob tests need the Azurite scripts/test starts; run scripts/test")
        })
    };
    Azurite {
        url: var("OUTPORT_TEST_AZURITE"),
        account: var("OUTPORT_TEST_AZURITE_ACCOUNT"),
        key: var("OUTPORT_TEST_AZURITE_KEY"),
    }
}

/// A container name no other test uses (created by the export).
pub(super) fn new_container(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{test}-{}-{nanos}", std::process::id())
}

/// Lists or reads blobs with Shared Key signed by Python's `hmac`.
const CLIENT: &str = r#"
import base64, hashlib, hmac, sys, urllib.parse, urllib.request, email.utils, re
url, account, key, container, blob = sys.argv[1:6]
path = "/" + container + ("/" + blob if blob else "")
query = {} if blob else {"restype": "container", "comp": "list"}
full = url + urllib.parse.quote(path, safe="/:") + ("?" + urllib.parse.urlencode(query) if query else "")
date = email.utils.formatdate(usegmt=True)
headers = {"x-ms-date": date, "x-ms-version": "2021-08-06"}
resource = "/" + account + urllib.parse.urlparse(full).path + "".join(
    "\n%s:%s" % (k, v) for k, v in sorted(query.items()))
ms = "".join("%s:%s\n" % (k, v) for k, v in sorted(headers.items()))
to_sign = "GET\n" + "\n" * 11 + ms + resource
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
headers["Authorization"] = "SharedKey %s:%s" % (account, sig)
body = urllib.request.urlopen(urllib.request.Request(full, headers=headers)).read()
if blob:
    sys.stdout.buffer.write(body)
else:
    print("\n".join(re.findall(r"<Name>([^<]*)</Name>", body.decode())))
"#;

/// The names of the blobs in `container`, sorted.
pub(super) fn blob_names(az: &Azurite, container: &str) -> Vec<String> {
    let out = tool_ok(
        "python3",
        &["-c", CLIENT, &az.url, &az.account, &az.key, container, ""],
    );
    let mut names: Vec<String> = out.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// The bytes of blob `name` in `container`.
pub(super) fn blob(az: &Azurite, container: &str, name: &str) -> Vec<u8> {
    let output = tool(
        "python3",
        &["-c", CLIENT, &az.url, &az.account, &az.key, container, name],
    );
    assert!(output.status.success(), "reading blob {name}: {output:?}");
    output.stdout
}

/// `type=azblob,account_url=...,container=C` + `extra`.
pub(super) fn azblob_spec(az: &Azurite, container: &str, extra: &str) -> String {
    format!(
        "type=azblob,account_url={},container={container}{extra}",
        az.url
    )
}

/// `outport ARGS` with `env` and none of BuildKit's Azure variables of
/// the caller's.
pub(super) fn with_env(args: &[String], env: &[(&str, &str)]) -> Run {
    let cache = tempdir();
    let mut vars = vec![
        ("BUILDKIT_AZURE_STORAGE_ACCESS_KEY", ""),
        ("BUILDKIT_AZURE_STORAGE_ACCOUNT_NAME", ""),
        ("BUILDKIT_AZURE_STORAGE_ACCOUNT_URL", ""),
        ("BUILDKIT_AZURE_STORAGE_CONTAINER", ""),
        ("BUILDKIT_AZURE_STORAGE_PREFIX", ""),
    ];
    vars.extend_from_slice(env);
    outport_with_cache(args, cache.path(), &vars)
}

/// `outport cache export INPUT --export-cache SPEC --metadata-file FILE`
/// with the account key in the environment.
pub(super) fn azblob_export(az: &Azurite, input: &Path, spec: &str, metadata: &Path) -> Run {
    let args = [
        "cache",
        "export",
        path_str(input),
        "--export-cache",
        spec,
        "--metadata-file",
        path_str(metadata),
    ]
    .map(String::from);
    with_env(&args, &[("BUILDKIT_AZURE_STORAGE_ACCESS_KEY", &az.key)])
}

/// `outport cache import --import-cache SPEC --dest DEST` with the account
/// key in the environment.
pub(super) fn azblob_import(az: &Azurite, spec: &str, dest: &Path) -> Run {
    let args = [
        "cache",
        "import",
        "--import-cache",
        spec,
        "--dest",
        path_str(dest),
    ]
    .map(String::from);
    with_env(&args, &[("BUILDKIT_AZURE_STORAGE_ACCESS_KEY", &az.key)])
}

/// The key is in no output of `run`, nor in the files given.
#[track_caller]
pub(super) fn assert_no_key(az: &Azurite, run: &Run, files: &[&Path]) {
    assert!(
        !run.stderr.contains(&az.key) && !run.stdout_text().contains(&az.key),
        "the key appears in the output\n{}",
        run.describe()
    );
    for file in files {
        if let Ok(text) = std::fs::read_to_string(file) {
            assert!(
                !text.contains(&az.key),
                "the key appears in {}",
                file.display()
            );
        }
    }
}
