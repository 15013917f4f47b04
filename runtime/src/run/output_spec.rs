//! Parsing of `--output` specifications: buildctl-style CSV
//! (`type=oci,dest=out.tar,"annotation.k=a,b",name=x,name=y`).

use crate::error::Error;

/// One parsed `--output`: the runtime's own keys taken out, the rest kept
/// in order for the component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    /// The exporter type (`type=`).
    pub kind: String,
    /// The instance ID (`id=`), if the user set one.
    pub id: Option<String>,
    /// The destination (`dest=`), if any; `-` means standard output.
    pub dest: Option<String>,
    /// Every other key, in the order given (keys may repeat).
    pub options: Vec<(String, String)>,
}

impl OutputSpec {
    /// Parses one specification.
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let err = |message: String| Error::OutputSpec {
            spec: spec.to_string(),
            message,
        };
        let mut kind = None;
        let mut id = None;
        let mut dest = None;
        let mut options = Vec::new();
        for field in split_csv(spec).map_err(|e| err(e.to_string()))? {
            let Some((key, value)) = field.split_once('=') else {
                return Err(err(format!("field {field:?} is not KEY=VALUE")));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(err(format!("field {field:?} has an empty key")));
            }
            let slot = match key {
                "type" => &mut kind,
                "id" => &mut id,
                "dest" => &mut dest,
                _ => {
                    options.push((key.to_string(), value.to_string()));
                    continue;
                }
            };
            if slot.is_some() {
                return Err(err(format!("{key:?} is given twice")));
            }
            if value.is_empty() {
                return Err(err(format!("{key:?} is empty")));
            }
            *slot = Some(value.to_string());
        }
        let kind = kind.ok_or_else(|| err("missing type=".to_string()))?;
        Ok(OutputSpec {
            kind,
            id,
            dest,
            options,
        })
    }
}

/// The exporter type whose output is loaded into the docker daemon when it
/// has no `dest=` (buildx's `--load`).
pub const LOADS_BY_DEFAULT: &str = "docker";

/// Takes the runtime's `load=true|false` out of `options`: whether the
/// output of `spec` is loaded into the docker daemon. Without it, a
/// `docker` output without `dest=` is loaded.
pub fn take_load(spec: &OutputSpec, options: &mut Vec<(String, String)>) -> Result<bool, Error> {
    let err = |message: String| Error::OutputSpec {
        spec: format!("type={}", spec.kind),
        message,
    };
    let mut load = None;
    let mut kept = Vec::with_capacity(options.len());
    for (key, value) in options.drain(..) {
        if key != "load" {
            kept.push((key, value));
            continue;
        }
        if load.is_some() {
            return Err(err("\"load\" is given twice".to_string()));
        }
        load = Some(match value.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(err(format!("load={value:?}: expected true or false"))),
        });
    }
    *options = kept;
    Ok(load.unwrap_or(spec.kind == LOADS_BY_DEFAULT && spec.dest.is_none()))
}

/// Why a CSV record does not split.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// A quoted field has no closing quote.
    #[error("unterminated quoted field")]
    Unterminated,
    /// A character follows a quoted field's closing quote.
    #[error("unexpected {0:?} after a quoted field")]
    AfterQuoted(char),
    /// An unquoted field holds a quote.
    #[error("a quote inside an unquoted field")]
    QuoteInUnquoted,
}

/// Splits a CSV record the way Go's `encoding/csv` (used by buildctl and
/// buildx) does: fields separated by commas; a field starting with `"` is
/// quoted, may contain commas, and writes a quote as `""`.
pub fn split_csv(line: &str) -> Result<Vec<String>, CsvError> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(CsvError::Unterminated),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(c) => return Err(CsvError::AfterQuoted(c)),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err(CsvError::QuoteInUnquoted),
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field);
    }
}

/// Gives each output its instance ID (its `id=`, else its index) and rejects
/// duplicates.
pub fn assign_ids(specs: &[OutputSpec]) -> Result<Vec<String>, Error> {
    assign_ids_with(specs, "", "outputs")
}

/// Gives each specification its instance ID (its `id=`, else `prefix`
/// followed by its index) and rejects duplicates; `what` names the
/// specifications in the error (`outputs`, `cache instances`).
pub fn assign_ids_with(
    specs: &[OutputSpec],
    prefix: &str,
    what: &str,
) -> Result<Vec<String>, Error> {
    let ids: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| s.id.clone().unwrap_or_else(|| format!("{prefix}{i}")))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(Error::Usage(format!(
                "two {what} have the instance ID {id:?}"
            )));
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields() {
        let s = OutputSpec::parse("type=oci,dest=out.tar,name=a,name=b,tar=false").unwrap();
        assert_eq!(s.kind, "oci");
        assert_eq!(s.dest.as_deref(), Some("out.tar"));
        assert_eq!(s.id, None);
        assert_eq!(
            s.options,
            vec![
                ("name".into(), "a".into()),
                ("name".into(), "b".into()),
                ("tar".into(), "false".into())
            ]
        );
    }

    #[test]
    fn quoted_fields_keep_commas_and_quotes() {
        let s = OutputSpec::parse(r#"type=oci,"annotation.k=a,b","x=say ""hi""",id=one"#).unwrap();
        assert_eq!(s.id.as_deref(), Some("one"));
        assert_eq!(
            s.options,
            vec![
                ("annotation.k".into(), "a,b".into()),
                ("x".into(), "say \"hi\"".into())
            ]
        );
    }

    #[test]
    fn load_is_the_runtime_s() {
        let take = |s: &str| {
            let spec = OutputSpec::parse(s).unwrap();
            let mut options = spec.options.clone();
            take_load(&spec, &mut options).map(|load| (load, options))
        };
        assert_eq!(take("type=docker").unwrap(), (true, vec![]));
        assert_eq!(take("type=docker,dest=x.tar").unwrap(), (false, vec![]));
        assert_eq!(
            take("type=docker,dest=x.tar,load=true,name=a").unwrap(),
            (true, vec![("name".into(), "a".into())])
        );
        assert_eq!(take("type=docker,load=false").unwrap(), (false, vec![]));
        assert_eq!(take("type=oci,dest=x").unwrap(), (false, vec![]));
        assert_eq!(take("type=oci,load=true").unwrap(), (true, vec![]));
        let msg = |s: &str| take(s).unwrap_err().to_string();
        assert!(msg("type=docker,load=yes").contains("expected true or false"));
        assert!(msg("type=docker,load=true,load=false").contains("given twice"));
    }

    #[test]
    fn value_may_contain_equals() {
        let s = OutputSpec::parse("type=oci,annotation.a=b=c").unwrap();
        assert_eq!(s.options, vec![("annotation.a".into(), "b=c".into())]);
    }

    #[test]
    fn errors_name_the_problem() {
        let msg = |s: &str| OutputSpec::parse(s).unwrap_err().to_string();
        assert!(msg("dest=x").contains("missing type="));
        assert!(msg("type=oci,tar").contains("\"tar\" is not KEY=VALUE"));
        assert!(msg("type=oci,type=docker").contains("\"type\" is given twice"));
        assert!(msg("type=oci,\"name=a").contains("unterminated quoted field"));
        assert!(msg("type=oci,na\"me=a").contains("quote inside"));
        assert!(msg("type=oci,=x").contains("empty key"));
        assert!(msg("type=oci,dest=").contains("\"dest\" is empty"));
    }

    #[test]
    fn ids_default_to_index_and_must_be_unique() {
        let specs: Vec<OutputSpec> = ["type=oci", "type=oci,id=x", "type=oci"]
            .iter()
            .map(|s| OutputSpec::parse(s).unwrap())
            .collect();
        assert_eq!(assign_ids(&specs).unwrap(), vec!["0", "x", "2"]);
        let dup: Vec<OutputSpec> = ["type=oci,id=1", "type=oci"]
            .iter()
            .map(|s| OutputSpec::parse(s).unwrap())
            .collect();
        assert!(assign_ids(&dup).unwrap_err().to_string().contains("\"1\""));
    }
}
