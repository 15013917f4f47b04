//! outport's registry exporter, as a WebAssembly component (world
//! `outport:exporter/networked-exporter`): pushes the image to an OCI
//! distribution registry through `wasi:http`, BuildKit's `type=registry`
//! (and `type=image,push=true`).
//!
//! The SDK's `Plan` walks the image (applying the image options —
//! compression, media types, timestamps, annotations — the same code the
//! `oci` and `docker` exporters use) and `distribution::Registry` pushes
//! it to every `name=` at once: blobs each registry lacks (layer bytes
//! streamed by the host; other names of the same registry mount them from
//! the first, and a registry a `docker://` input came from mounts them from
//! the input's repository), then manifests, then the index, then the tag. The host allows
//! only the registries of `name=` (or the policy's hosts) and adds the
//! credentials; this component never sees them.

use outport_exporter::distribution::{PushStats, Registry, Target};
use outport_exporter::image_options::{self, ImageOptions};
use outport_exporter::options::{OptionSpec, Parsed};
use outport_exporter::{
    ComponentInfo, Error, Guest, Options, OutputKind, Plan, Request, ResponseEntry, log, response,
};

/// The options of this exporter alone.
const OWN: &[OptionSpec] = &[
    OptionSpec::repeatable(
        "name",
        "image to push to (registry/repository[:tag]); repeat or separate with commas \
         to push to several at once",
    ),
    OptionSpec::once(
        "push",
        "push the image (only true: outport keeps no image store; type=image needs push=true)",
    )
    .default("true"),
    OptionSpec::once(
        "push-by-digest",
        "push the image without a tag, by its digest only",
    )
    .default("false"),
    OptionSpec::once(
        "registry.insecure",
        "talk plain HTTP to the registry instead of HTTPS",
    )
    .default("false"),
];

/// The options, as `describe` lists them and `validate` accepts them: its
/// own, then the image options every image exporter shares.
fn specs() -> Vec<OptionSpec> {
    [OWN, image_options::SPECS].concat()
}

/// Options after validation.
struct Settings {
    names: Vec<String>,
    by_digest: bool,
    insecure: bool,
    image: ImageOptions,
}

fn parse(options: &[(String, String)]) -> Result<Settings, Error> {
    let parsed = Parsed::new("registry", &specs(), options)?;
    if !parsed.bool("push", true)? {
        return Err(Error::InvalidOption(
            "registry: push=false: outport keeps no image store, so an image can only be \
             pushed (type=registry or type=image,push=true); to write it to a file use \
             type=oci or type=docker"
                .to_owned(),
        ));
    }
    let names = parsed.image_names("name")?;
    if names.is_empty() {
        return Err(Error::InvalidOption(
            "registry: name= is required (the image to push, e.g. registry.example.com/app:1)"
                .to_owned(),
        ));
    }
    Ok(Settings {
        names,
        by_digest: parsed.bool("push-by-digest", false)?,
        insecure: parsed.bool("registry.insecure", false)?,
        image: ImageOptions::parse("registry", &parsed)?,
    })
}

struct RegistryExporter;

impl Guest for RegistryExporter {
    fn describe() -> ComponentInfo {
        ComponentInfo {
            name: "registry".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            summary: "push the image to an OCI distribution registry".to_owned(),
            options: outport_exporter::options::describe(&specs()),
        }
    }

    fn validate(options: Options) -> Result<OutputKind, Error> {
        parse(&options)?;
        Ok(OutputKind::None)
    }

    fn export(request: Request) -> Result<Vec<ResponseEntry>, Error> {
        let settings = parse(&request.options)?;
        let rewrites = settings.image.rewrites(request.source_date_epoch)?;
        let plan = Plan::image(&rewrites)?;
        let targets = settings
            .names
            .iter()
            .map(|name| {
                let (registry, tag) = Registry::for_name(name, settings.insecure)?;
                let tag = if settings.by_digest { None } else { tag };
                Ok(Target { registry, tag })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let pushed = Registry::push_names(&plan, &targets)?;
        for (name, stats) in settings.names.iter().zip(pushed) {
            let PushStats {
                uploaded,
                present,
                mounted,
                manifests,
            } = stats;
            log::info(&format!(
                "pushed {name}: {uploaded} blobs uploaded, {present} already present, {mounted} mounted, {manifests} manifests"
            ));
        }
        response::image_entries(&plan, &settings.names)
    }
}

outport_exporter::export!(RegistryExporter);
