//! The host's own outbound access, never a component's: credentials from
//! the docker config, registry bearer tokens, AWS credentials and SigV4
//! request signing, Azure Shared Key signing, the choice between them, and
//! how requests to a storage endpoint are retried.

pub mod aws_credentials;
pub mod azure_shared_key;
pub mod credential_helper;
pub mod docker_config;
pub mod docker_daemon;
pub mod registry_auth;
pub mod retry;
pub mod signing;
pub mod sigv4;
