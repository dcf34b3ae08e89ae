//! Several `strata` processes share one store. These tests run the store in child
//! processes — this test binary re-executed with `--exact child` and a role in the
//! environment — and synchronise with them through their stdin and stdout (lines that
//! contain `@@`), never by sleeping.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use strata_digest::{sha256, Digest};
use strata_store::{CacheRecord, ImageRecord, Store};

const ROLE: &str = "STRATA_STORE_TEST_ROLE";
const ROOT: &str = "STRATA_STORE_TEST_ROOT";
const WRITES: usize = 100;

/// The child side. Does nothing unless started by `spawn`.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT).expect("root for the child"));
    match role.as_str() {
        "writer-a" => concurrent_writer(&root, "a"),
        "writer-b" => concurrent_writer(&root, "b"),
        "killed" => write_until_killed(&root),
        "holder" => hold_a_temp_file(&root),
        "opener" => open_on_signal(&root),
        other => panic!("unknown role {other}"),
    }
}

struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(role: &str, root: &Path) -> Proc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(ROOT, root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    /// The next message the child printed (the text after `@@`).
    fn recv(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(n > 0, "child exited early: {:?}", self.child.wait());
            if let Some(at) = line.find("@@") {
                return line[at + 2..].trim_end().to_string();
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn wait_success(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

fn say(message: &str) {
    println!("@@{message}");
}

fn wait_for_parent() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

fn image_record(manifest: Digest) -> ImageRecord {
    ImageRecord {
        manifest,
        config: sha256(b"config"),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 42,
        created: None,
        platform: "linux/amd64".into(),
    }
}

fn cache_record(description: String) -> CacheRecord {
    CacheRecord {
        value: serde_json::json!({ "description": description }),
        created: 1,
        last_used: 1,
        use_count: 0,
        description,
        size: 7,
    }
}

fn tmp_entries(root: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

fn read_counter(root: &Path) -> usize {
    match std::fs::read_to_string(root.join("counter")) {
        Ok(text) => text.parse().unwrap(),
        Err(_) => 0,
    }
}

// ---- two writers at once -------------------------------------------------------------

fn concurrent_writer(root: &Path, tag: &str) {
    let store = Store::open(root).unwrap();
    say("ready");
    wait_for_parent();
    let shared = sha256(b"shared cache key");
    for i in 0..WRITES {
        // Both processes write the same blob content, each under its own names.
        let blob = store.put_bytes(format!("shared-{i}").as_bytes()).unwrap();
        store
            .put_image(
                &format!("docker.io/library/{tag}-{i}:latest"),
                &image_record(blob),
            )
            .unwrap();
        store
            .cache_put(
                &sha256(format!("{tag}-{i}")),
                &cache_record(format!("{tag} {i}")),
            )
            .unwrap();
        assert!(store.cache_get(&shared).unwrap().is_some());
        // A read-modify-write of a plain file: only the key lock keeps it from losing
        // increments.
        let lock = store.lock("counter").unwrap();
        let n = read_counter(root);
        std::fs::write(root.join("counter"), (n + 1).to_string()).unwrap();
        drop(lock);
    }
    say("done");
}

#[test]
fn two_processes_writing_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Both children create the fresh store at the same time.
    let mut a = Proc::spawn("writer-a", root);
    let mut b = Proc::spawn("writer-b", root);
    assert_eq!(a.recv(), "ready");
    assert_eq!(b.recv(), "ready");

    let store = Store::open(root).unwrap();
    let shared = sha256(b"shared cache key");
    store
        .cache_put(&shared, &cache_record("shared".into()))
        .unwrap();
    a.send("go");
    b.send("go");
    assert_eq!(a.recv(), "done");
    assert_eq!(b.recv(), "done");
    a.wait_success();
    b.wait_success();

    let images = store.images().unwrap();
    assert_eq!(images.len(), 2 * WRITES);
    let records = store.cache_records().unwrap();
    assert_eq!(records.len(), 2 * WRITES + 1);
    for tag in ["a", "b"] {
        for i in 0..WRITES {
            let blob = sha256(format!("shared-{i}"));
            let name = format!("docker.io/library/{tag}-{i}:latest");
            assert_eq!(
                store.image(&name).unwrap(),
                Some(image_record(blob)),
                "{name}"
            );
            assert_eq!(
                store.read_blob(&blob).unwrap(),
                format!("shared-{i}").as_bytes()
            );
            let key = sha256(format!("{tag}-{i}"));
            let found = records.iter().find(|(k, _)| *k == key).map(|(_, r)| r);
            assert_eq!(
                found,
                Some(&cache_record(format!("{tag} {i}"))),
                "{tag}-{i}"
            );
        }
    }
    let shared_rec = &records.iter().find(|(k, _)| *k == shared).unwrap().1;
    assert_eq!(shared_rec.use_count, 2 * WRITES as u64, "every hit counted");
    assert_eq!(
        read_counter(root),
        2 * WRITES,
        "the key lock excluded the other process"
    );
    assert_eq!(tmp_entries(root), vec![store.tmp_dir().to_path_buf()]);
}

// ---- SIGKILL in the middle of writing ------------------------------------------------

fn write_until_killed(root: &Path) {
    let store = Store::open(root).unwrap();
    let lease = store.lease("child build").unwrap();
    store.lease_add(&lease, "blob", "pinned-by-child").unwrap();
    let _lock = store.lock("held-by-child").unwrap();
    // An unfinished blob, so there is certainly something in tmp/ when the kill lands.
    let mut partial = store.blob_writer().unwrap();
    partial.write_all(&[0u8; 100_000]).unwrap();
    partial.flush().unwrap();
    say("ready");
    for i in 0.. {
        let content: Vec<u8> = format!("blob {i} ")
            .bytes()
            .cycle()
            .take(64 << 10)
            .collect();
        let mut writer = store.blob_writer().unwrap();
        for chunk in content.chunks(5000) {
            writer.write_all(chunk).unwrap();
        }
        let (blob, _) = writer.commit(None).unwrap();
        store
            .put_image(
                &format!("docker.io/library/killed:{i}"),
                &image_record(blob),
            )
            .unwrap();
        store
            .cache_put(
                &sha256(format!("killed {i}")),
                &cache_record(format!("{i}")),
            )
            .unwrap();
        say(&format!("committed {i}"));
    }
}

#[test]
fn a_process_killed_mid_write_leaves_a_clean_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    drop(Store::open(root).unwrap());
    let mut child = Proc::spawn("killed", root);
    assert_eq!(child.recv(), "ready");
    {
        let store = Store::open(root).unwrap();
        assert!(store.leased("blob", "pinned-by-child").unwrap());
        assert!(store.try_lock("held-by-child").unwrap().is_none());
        // The child's session survived this open: it is alive.
        assert_eq!(tmp_entries(root).len(), 2);
    }
    let last = 30;
    loop {
        if child.recv() == format!("committed {last}") {
            break;
        }
    }
    child.child.kill().unwrap(); // SIGKILL
    child.child.wait().unwrap();

    let leftovers = tmp_entries(root);
    assert_eq!(
        leftovers.len(),
        1,
        "the child's session is still there before reopening"
    );
    assert!(std::fs::read_dir(&leftovers[0]).unwrap().count() >= 1);

    let store = Store::open(root).unwrap();
    assert_eq!(
        tmp_entries(root),
        vec![store.tmp_dir().to_path_buf()],
        "stale tmp cleaned"
    );
    assert!(
        !store.leased("blob", "pinned-by-child").unwrap(),
        "dead lease expired"
    );
    assert!(
        store.try_lock("held-by-child").unwrap().is_some(),
        "kernel released the lock"
    );

    let conn = rusqlite::Connection::open(root.join("meta.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);

    let images = store.images().unwrap();
    let cache = store.cache_records().unwrap();
    for i in 0..=last {
        let name = format!("docker.io/library/killed:{i}");
        assert!(images.iter().any(|(n, _)| *n == name), "{name} lost");
        let key = sha256(format!("killed {i}"));
        assert!(
            cache.iter().any(|(k, _)| *k == key),
            "cache record {i} lost"
        );
    }
    // Every image that made it (including any after `last`) points at an intact blob:
    // blobs are durable before the record naming them is written.
    for (name, rec) in &images {
        let data = store.read_blob(&rec.manifest).unwrap();
        assert!(data.starts_with(b"blob "), "{name}");
    }
    // And the store takes writes again.
    let d = store.put_bytes(b"after the crash").unwrap();
    store.put_image("after:crash", &image_record(d)).unwrap();
    assert!(store.image("after:crash").unwrap().is_some());
}

// ---- a live process's tmp/ is left alone ---------------------------------------------

fn hold_a_temp_file(root: &Path) {
    let store = Store::open(root).unwrap();
    let mut writer = store.blob_writer().unwrap();
    writer.write_all(b"hello ").unwrap();
    writer.flush().unwrap();
    say(&format!("ready {}", store.tmp_dir().display()));
    wait_for_parent();
    writer.write_all(b"world").unwrap();
    writer.commit(Some(&sha256(b"hello world"))).unwrap();
    say("committed");
}

#[test]
fn opening_the_store_keeps_a_live_process_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut child = Proc::spawn("holder", root);
    let ready = child.recv();
    let child_tmp = PathBuf::from(ready.strip_prefix("ready ").unwrap());
    assert_eq!(std::fs::read_dir(&child_tmp).unwrap().count(), 1);

    let store = Store::open(root).unwrap();
    assert_eq!(std::fs::read_dir(&child_tmp).unwrap().count(), 1);
    child.send("go");
    assert_eq!(child.recv(), "committed");
    child.wait_success();
    assert_eq!(
        store.read_blob(&sha256(b"hello world")).unwrap(),
        b"hello world"
    );
    // The child's Store dropped at exit and removed its own session.
    assert!(!child_tmp.exists());
}

/// Opens the store when the parent says so.
fn open_on_signal(root: &Path) {
    say("ready");
    wait_for_parent();
    Store::open(root).unwrap();
    say("opened");
}

/// Processes opening a new store at once: each switches the new file to WAL, which
/// needs an exclusive lock; none may fail with "database is locked".
#[test]
fn processes_opening_a_new_store_at_once_all_succeed() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let mut procs: Vec<Proc> = (0..6).map(|_| Proc::spawn("opener", dir.path())).collect();
        for p in &mut procs {
            assert_eq!(p.recv(), "ready");
        }
        for p in &mut procs {
            p.send("go");
        }
        for mut p in procs {
            assert_eq!(p.recv(), "opened");
            p.wait_success();
        }
    }
}
