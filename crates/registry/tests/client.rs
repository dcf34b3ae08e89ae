//! The client against a real registry (Debian's docker-registry) on loopback, and its
//! auth flows against a small in-test server.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use strata_digest::sha256;
use strata_oci::Reference;
use strata_registry::{
    base64_encode, Access, Client, ClientOptions, CredentialSource, Credentials, RegistryError,
};

fn client() -> Client {
    Client::new(ClientOptions {
        credentials: CredentialSource::None,
        backoff: std::time::Duration::from_millis(10),
        ..Default::default()
    })
    .unwrap()
}

fn bytes_reader(data: Vec<u8>) -> impl Fn() -> std::io::Result<Box<dyn Read + Send>> {
    move || Ok(Box::new(std::io::Cursor::new(data.clone())) as Box<dyn Read + Send>)
}

#[test]
fn push_mount_pull_round_trip() {
    let Some(reg) = common::Registry::start() else {
        return;
    };
    let c = client();
    assert_eq!(c.ping(&reg.addr).unwrap(), None);
    let repo = Reference::parse(&format!("{}/team/app:v1", reg.addr)).unwrap();
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let ld = sha256(&layer);
    assert_eq!(c.head_blob(&repo, &ld, Access::Push).unwrap(), None);
    c.push_blob(&repo, &ld, layer.len() as u64, &bytes_reader(layer.clone()))
        .unwrap();
    assert_eq!(
        c.head_blob(&repo, &ld, Access::Push).unwrap(),
        Some(layer.len() as u64)
    );
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let cd = sha256(&config);
    c.push_blob(
        &repo,
        &cd,
        config.len() as u64,
        &bytes_reader(config.clone()),
    )
    .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let md = c
        .put_manifest(
            &repo,
            "v1",
            strata_oci::media_types::OCI_MANIFEST,
            manifest.as_bytes(),
        )
        .unwrap();
    assert_eq!(md, sha256(manifest.as_bytes()));

    let head = c.head_manifest(&repo).unwrap().unwrap();
    assert_eq!(head.digest, Some(md));
    let got = c.get_manifest(&repo).unwrap();
    assert_eq!(got.bytes, manifest.as_bytes());
    assert_eq!(got.media_type, strata_oci::media_types::OCI_MANIFEST);
    let by_digest = Reference::parse(&format!("{}/team/app@{md}", reg.addr)).unwrap();
    assert_eq!(c.get_manifest(&by_digest).unwrap().digest, md);

    let out = c
        .get_blob(&repo, &ld, Some(layer.len() as u64), || Ok(Vec::new()))
        .unwrap();
    assert_eq!(out, layer);

    // Cross-repository mount: 201 and no upload.
    let other = Reference::parse(&format!("{}/other/app:v1", reg.addr)).unwrap();
    assert!(c.mount_blob(&other, &ld, "team/app").unwrap());
    assert_eq!(
        c.head_blob(&other, &ld, Access::Pull).unwrap(),
        Some(layer.len() as u64)
    );
    // From a repository without the blob: the registry declines, we report false.
    let missing = sha256(b"nope");
    assert!(!c.mount_blob(&other, &missing, "team/app").unwrap());

    // Unknown tag and blob: NotFound naming what was asked.
    let nope = Reference::parse(&format!("{}/team/app:nope", reg.addr)).unwrap();
    assert!(c.head_manifest(&nope).unwrap().is_none());
    let e = c.get_manifest(&nope).unwrap_err();
    assert!(
        matches!(e, RegistryError::NotFound { status: 404, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("team/app:nope"), "{e}");
    let stats = c.stats();
    assert_eq!(stats.blobs_uploaded, 2);
    assert_eq!(stats.blobs_mounted, 1);
    assert_eq!(stats.retries, 0);
}

#[test]
fn tampered_blob_is_rejected() {
    let Some(reg) = common::Registry::start() else {
        return;
    };
    let c = client();
    let repo = Reference::parse(&format!("{}/t/x:1", reg.addr)).unwrap();
    let data = vec![7u8; 10_000];
    let d = sha256(&data);
    c.push_blob(&repo, &d, data.len() as u64, &bytes_reader(data.clone()))
        .unwrap();
    // Same size, different bytes in the registry's storage.
    std::fs::write(reg.blob_file(&d.hex()), vec![8u8; 10_000]).unwrap();
    let e = c
        .get_blob(&repo, &d, Some(10_000), || Ok(Vec::new()))
        .unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&d.to_string()), "{e}");
    // Longer than the descriptor says.
    std::fs::write(reg.blob_file(&d.hex()), vec![7u8; 10_001]).unwrap();
    let e = c
        .get_blob(&repo, &d, Some(10_000), || Ok(Vec::new()))
        .unwrap_err();
    assert!(matches!(e, RegistryError::SizeMismatch { .. }), "{e}");
}

type Seen = (String, String, Vec<(String, String)>);

/// A tiny HTTP/1.1 server: each connection is answered by `handler(method, path,
/// headers)`; it records the requests.
struct TestServer {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The request bodies, in the order of `seen`.
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

type Handler = dyn Fn(&str, &str, &[(String, String)], &str) -> (u16, Vec<(String, String)>, Vec<u8>)
    + Send
    + Sync;

impl TestServer {
    fn start(handler: Arc<Handler>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let bodies2 = bodies.clone();
        let addr2 = addr.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let handler = handler.clone();
                let seen = seen2.clone();
                let bodies = bodies2.clone();
                let addr = addr2.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let method = parts.next().unwrap_or("").to_string();
                        let path = parts.next().unwrap_or("").to_string();
                        let mut headers = Vec::new();
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            reader.read_line(&mut h).unwrap();
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (k, v) = h.split_once(':').unwrap();
                            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                            if k == "content-length" {
                                len = v.parse().unwrap();
                            }
                            headers.push((k, v));
                        }
                        let mut body = vec![0u8; len];
                        reader.read_exact(&mut body).unwrap();
                        bodies.lock().unwrap().push(body.clone());
                        seen.lock()
                            .unwrap()
                            .push((method.clone(), path.clone(), headers.clone()));
                        let (status, hs, body) = handler(&method, &path, &headers, &addr);
                        let mut out =
                            format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                        for (k, v) in hs {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        stream.write_all(out.as_bytes()).unwrap();
                        if method != "HEAD" {
                            stream.write_all(&body).unwrap();
                        }
                    }
                });
            }
        });
        TestServer { addr, seen, bodies }
    }
}

fn header<'a>(hs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    hs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

#[test]
fn bearer_token_flow_with_basic_credentials_and_cache() {
    let server = TestServer::start(Arc::new(|method, path, hs, addr| {
        let auth = header(hs, "authorization");
        if path.starts_with("/token") {
            // Only the right basic credentials get a token.
            if auth != Some(&format!("Basic {}", base64_encode(b"alice:s3cret"))) {
                return (401, vec![], vec![]);
            }
            assert!(path.contains("service=test-registry"), "{path}");
            assert!(
                path.contains("scope=repository%3Ateam%2Fapp%3Apull")
                    || path.contains("scope=repository:team/app:pull"),
                "{path}"
            );
            return (
                200,
                vec![],
                br#"{"token":"tok-123","expires_in":300}"#.to_vec(),
            );
        }
        if auth != Some("Bearer tok-123") {
            return (
                401,
                vec![(
                    "WWW-Authenticate".into(),
                    format!(
                        r#"Bearer realm="http://{addr}/token",service="test-registry",scope="repository:team/app:pull""#
                    ),
                )],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec(),
            );
        }
        assert_eq!(method, "GET");
        (
            200,
            vec![(
                "Content-Type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            MANIFEST.to_vec(),
        )
    }));
    let creds = CredentialSource::Static(
        [(
            server.addr.clone(),
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cret".into(),
            },
        )]
        .into(),
    );
    let c = Client::new(ClientOptions {
        credentials: creds,
        ..Default::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{}/team/app:v1", server.addr)).unwrap();
    let m = c.get_manifest(&r).unwrap();
    assert_eq!(m.bytes, MANIFEST);
    c.get_manifest(&r).unwrap();
    let seen = server.seen.lock().unwrap().clone();
    let tokens = seen
        .iter()
        .filter(|(_, p, _)| p.starts_with("/token"))
        .count();
    // 401, token, retry; then the cached token: one request.
    assert_eq!(tokens, 1, "{seen:?}");
    assert_eq!(seen.len(), 4, "{seen:?}");

    // Wrong password: a clear error without the secret.
    let c = Client::new(ClientOptions {
        credentials: CredentialSource::Static(
            [(
                server.addr.clone(),
                Credentials::Basic {
                    username: "alice".into(),
                    password: "wrong-pw".into(),
                },
            )]
            .into(),
        ),
        ..Default::default()
    })
    .unwrap();
    let e = c.get_manifest(&r).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, RegistryError::Denied { status: 401, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("team/app:v1") && !msg.contains("wrong-pw"),
        "{msg}"
    );
}

#[test]
fn basic_auth_and_retries_on_5xx_and_429() {
    let count = Arc::new(Mutex::new(0u32));
    let count2 = count.clone();
    let server = TestServer::start(Arc::new(move |_, _, hs, _| {
        if header(hs, "authorization") != Some(&format!("Basic {}", base64_encode(b"bob:pw"))) {
            return (
                401,
                vec![(
                    "WWW-Authenticate".into(),
                    r#"Basic realm="registry""#.into(),
                )],
                vec![],
            );
        }
        let mut n = count2.lock().unwrap();
        *n += 1;
        match *n {
            1 => (503, vec![], vec![]),
            2 => (429, vec![("Retry-After".into(), "1".into())], vec![]),
            _ => (
                200,
                vec![(
                    "Content-Type".into(),
                    "application/vnd.oci.image.manifest.v1+json".into(),
                )],
                MANIFEST.to_vec(),
            ),
        }
    }));
    let c = Client::new(ClientOptions {
        credentials: CredentialSource::Static(
            [(
                server.addr.clone(),
                Credentials::Basic {
                    username: "bob".into(),
                    password: "pw".into(),
                },
            )]
            .into(),
        ),
        backoff: std::time::Duration::from_millis(10),
        ..Default::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{}/x/y:1", server.addr)).unwrap();
    let t = std::time::Instant::now();
    assert_eq!(c.get_manifest(&r).unwrap().bytes, MANIFEST);
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert_eq!(c.stats().retries, 2);

    // Always 500: bounded attempts, then an error naming the status.
    let server = TestServer::start(Arc::new(|_, _, _, _| (500, vec![], vec![])));
    let c = Client::new(ClientOptions {
        credentials: CredentialSource::None,
        attempts: 3,
        backoff: std::time::Duration::from_millis(5),
        ..Default::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{}/x/y:1", server.addr)).unwrap();
    let e = c.get_manifest(&r).unwrap_err();
    assert_eq!(e.status(), Some(500), "{e}");
    assert_eq!(server.seen.lock().unwrap().len(), 3);
    // No credentials for a basic challenge: says so.
    let server = TestServer::start(Arc::new(|_, _, _, _| {
        (
            401,
            vec![("WWW-Authenticate".into(), r#"Basic realm="r""#.into())],
            vec![],
        )
    }));
    let r = Reference::parse(&format!("{}/x/y:1", server.addr)).unwrap();
    let e = c.get_manifest(&r).unwrap_err();
    assert!(e.to_string().contains("none is configured"), "{e}");
}

#[test]
fn identity_tokens_are_oauth2_refresh_tokens() {
    let server = TestServer::start(Arc::new(|method, path, hs, addr| {
        if path.starts_with("/token") {
            // Only the OAuth2 form POST gets a token.
            if method != "POST"
                || header(hs, "content-type") != Some("application/x-www-form-urlencoded")
            {
                return (401, vec![], vec![]);
            }
            return (
                200,
                vec![],
                br#"{"access_token":"acc-1","expires_in":300,"refresh_token":"rt-next"}"#.to_vec(),
            );
        }
        if header(hs, "authorization") != Some("Bearer acc-1") {
            return (
                401,
                vec![(
                    "WWW-Authenticate".into(),
                    format!(r#"Bearer realm="http://{addr}/token",service="test-registry""#),
                )],
                vec![],
            );
        }
        manifest_ok()
    }));
    let token = Credentials::IdentityToken("rt+xyz/1".into());
    let credentials = CredentialSource::Static([(server.addr.clone(), token)].into());
    let c = Client::new(ClientOptions {
        credentials,
        ..Default::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{}/team/app:v1", server.addr)).unwrap();
    assert_eq!(c.get_manifest(&r).unwrap().bytes, MANIFEST);
    let seen = server.seen.lock().unwrap().clone();
    let bodies = server.bodies.lock().unwrap().clone();
    let i = seen
        .iter()
        .position(|(m, p, _)| m == "POST" && p == "/token")
        .expect("a token POST");
    let form = String::from_utf8(bodies[i].clone()).unwrap();
    for part in [
        "grant_type=refresh_token",
        "refresh_token=rt%2Bxyz/1",
        "service=test-registry",
        "scope=repository:team/app:pull",
        "client_id=strata",
    ] {
        assert!(form.split('&').any(|p| p == part), "{part} in {form}");
    }
}

fn manifest_ok() -> (u16, Vec<(String, String)>, Vec<u8>) {
    let content_type = "application/vnd.oci.image.manifest.v1+json";
    (
        200,
        vec![("Content-Type".into(), content_type.into())],
        MANIFEST.to_vec(),
    )
}

#[test]
fn pulls_try_mirrors_in_order_and_skip_unreachable_ones() {
    let upstream = TestServer::start(Arc::new(|method, path, _, _| {
        if method == "HEAD" && path.contains("/blobs/") {
            return (404, vec![], vec![]);
        }
        if path.contains("/only-upstream/") {
            return manifest_ok();
        }
        (404, vec![], vec![])
    }));
    let mirror = TestServer::start(Arc::new(|_, path, _, _| {
        if path.contains("/only-upstream/") {
            return (404, vec![], vec![]);
        }
        manifest_ok()
    }));
    let c = Client::new(ClientOptions {
        credentials: CredentialSource::None,
        mirrors: [(
            upstream.addr.clone(),
            vec!["127.0.0.1:1".to_string(), mirror.addr.clone()],
        )]
        .into(),
        attempts: 2,
        backoff: std::time::Duration::from_millis(1),
        ..Default::default()
    })
    .unwrap();
    let count = |s: &TestServer| s.seen.lock().unwrap().len();
    let r = Reference::parse(&format!("{}/library/app:v1", upstream.addr)).unwrap();
    // The unreachable mirror is tried (with its retries), then the next one serves.
    assert_eq!(c.get_manifest(&r).unwrap().bytes, MANIFEST);
    assert_eq!((count(&mirror), count(&upstream)), (1, 0));
    let seen = mirror.seen.lock().unwrap().clone();
    assert_eq!(seen[0].1, "/v2/library/app/manifests/v1", "{seen:?}");
    // From then on the unreachable mirror is skipped: one request in all.
    let before = c.stats().requests;
    c.get_manifest(&r).unwrap();
    assert_eq!(c.stats().requests, before + 1);
    // Missing on the mirror: the registry itself answers.
    let r2 = Reference::parse(&format!("{}/only-upstream/app:v1", upstream.addr)).unwrap();
    assert_eq!(c.get_manifest(&r2).unwrap().bytes, MANIFEST);
    assert_eq!(count(&upstream), 1);
    // A push's HEAD never goes to a mirror.
    let d = sha256(b"x");
    assert_eq!(c.head_blob(&r, &d, Access::Push).unwrap(), None);
    assert_eq!((count(&mirror), count(&upstream)), (3, 2));
}
