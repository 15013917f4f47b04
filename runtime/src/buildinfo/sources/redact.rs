//! Credential redaction: what build info and provenance may say about a
//! URL-like reference, an alias or an attribute.

/// Query parameters whose value is a secret (compared case-insensitively):
/// generic tokens and passwords, OAuth, GitLab, AWS SigV4 and S3 presigned
/// URLs, Google Cloud Storage signed URLs and Azure SAS.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "auth",
    "auth_token",
    "private_token",
    "private-token",
    "job_token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "awsaccesskeyid",
    "x-goog-signature",
    "x-goog-credential",
    "googleaccessid",
];

/// Strips credentials from a URL-like string; anything else is returned as
/// is. `scheme://user:pass@host/…` loses its user information entirely (a
/// bare user can be a token, as GitHub's `https://TOKEN@github.com/…`)
/// except that SSH URLs keep the user name (`ssh://git@host/…`), the
/// scp-like `user:pass@host:path` loses the password part only (`git@` is
/// no secret), and query parameters named in [`SECRET_PARAMS`] are removed.
/// The rest of the string is kept byte for byte.
pub fn redact(s: &str) -> String {
    if let Some(scheme_end) = s.find("://")
        && !s[..scheme_end].is_empty()
        && s[..scheme_end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        let after = scheme_end + 3;
        let rest = &s[after..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let host = match authority.rsplit_once('@') {
            // An SSH user (`ssh://git@host/…`) is no secret; its password is.
            Some((user_info, host)) if s[..scheme_end].contains("ssh") => {
                let user = user_info.split(':').next().unwrap_or_default();
                format!("{user}@{host}")
            }
            Some((_, host)) => host.to_string(),
            None => authority.to_string(),
        };
        let tail = redact_query(&rest[authority_end..]);
        return format!("{}{host}{tail}", &s[..after]);
    }
    // scp-like git: user:password@host:path (no scheme, no slash before '@').
    if let Some((user_info, rest)) = s.split_once('@')
        && !user_info.contains('/')
        && let Some((user, _password)) = user_info.split_once(':')
        && rest.contains(':')
    {
        return format!("{user}@{}", redact_query(rest));
    }
    redact_query(s)
}

/// Removes secret parameters from the query of `s` (the part after `?`, up
/// to `#`). Parameter names are compared after percent-decoding.
fn redact_query(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_string();
    };
    let (head, rest) = s.split_at(q);
    let rest = &rest[1..];
    let (query, fragment) = match rest.find('#') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|param| {
            let name = param.split('=').next().unwrap_or_default();
            let name = percent_decode(name).to_ascii_lowercase();
            !SECRET_PARAMS.contains(&name.as_str())
        })
        .collect();
    if kept.is_empty() {
        format!("{head}{fragment}")
    } else {
        format!("{head}?{}{fragment}", kept.join("&"))
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
