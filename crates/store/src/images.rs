//! Image names: a full reference (`docker.io/library/app:latest`) → the stored image.

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use strata_digest::Digest;

use crate::db::digest_column;
use crate::{Result, Store};

/// An image in the local store. Its manifest and config (and layers) are blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub manifest: Digest,
    pub config: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// Sum of the layer and config blob sizes.
    pub size: u64,
    /// RFC 3339 creation time from the config, if it has one.
    pub created: Option<String>,
    /// `os/arch[/variant]`.
    pub platform: String,
}

const COLUMNS: &str = "manifest, config, media_type, size, created, platform";

fn record(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        manifest: digest_column(row, first)?,
        config: digest_column(row, first + 1)?,
        media_type: row.get(first + 2)?,
        size: row.get(first + 3)?,
        created: row.get(first + 4)?,
        platform: row.get(first + 5)?,
    })
}

impl Store {
    /// Points `name` at `rec`, replacing what it named before (atomically: a reader
    /// sees the old record or the new one).
    pub fn put_image(&self, name: &str, rec: &ImageRecord) -> Result<()> {
        self.write(
            || format!("writing image {name}"),
            |tx| {
                tx.execute(
                    "INSERT INTO images (name, manifest, config, media_type, size, created, platform)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (name) DO UPDATE SET
                        manifest = excluded.manifest, config = excluded.config,
                        media_type = excluded.media_type, size = excluded.size,
                        created = excluded.created, platform = excluded.platform",
                    (
                        name,
                        rec.manifest.to_string(),
                        rec.config.to_string(),
                        &rec.media_type,
                        rec.size,
                        &rec.created,
                        &rec.platform,
                    ),
                )
                .map(drop)
            },
        )
    }

    pub fn image(&self, name: &str) -> Result<Option<ImageRecord>> {
        self.read(
            || format!("reading image {name}"),
            |conn| {
                conn.query_row(
                    &format!("SELECT {COLUMNS} FROM images WHERE name = ?1"),
                    [name],
                    |row| record(row, 0),
                )
                .optional()
            },
        )
    }

    /// All images, sorted by name.
    pub fn images(&self) -> Result<Vec<(String, ImageRecord)>> {
        self.read(
            || "listing images".into(),
            |conn| {
                let mut stmt =
                    conn.prepare(&format!("SELECT name, {COLUMNS} FROM images ORDER BY name"))?;
                let rows = stmt.query_map([], |row| Ok((row.get(0)?, record(row, 1)?)))?;
                rows.collect()
            },
        )
    }

    /// Removes the name; true if it existed. Blobs stay until garbage collection.
    pub fn remove_image(&self, name: &str) -> Result<bool> {
        self.write(
            || format!("removing image {name}"),
            |tx| Ok(tx.execute("DELETE FROM images WHERE name = ?1", [name])? > 0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seed: &str) -> ImageRecord {
        ImageRecord {
            manifest: strata_digest::sha256(format!("m{seed}")),
            config: strata_digest::sha256(format!("c{seed}")),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1234,
            created: Some("2024-01-02T03:04:05Z".into()),
            platform: "linux/amd64".into(),
        }
    }

    #[test]
    fn images_crud() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let app = "docker.io/library/app:latest";
        assert_eq!(store.image(app).unwrap(), None);
        store.put_image(app, &rec("1")).unwrap();
        assert_eq!(store.image(app).unwrap(), Some(rec("1")));

        let mut second = rec("2");
        second.created = None;
        second.platform = "linux/arm64/v8".into();
        store.put_image(app, &second).unwrap();
        assert_eq!(store.image(app).unwrap(), Some(second.clone()));

        store
            .put_image("docker.io/library/alpha:1", &rec("3"))
            .unwrap();
        store
            .put_image("localhost:5000/zeta@sha256:00", &rec("4"))
            .unwrap();
        let names: Vec<String> = store
            .images()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            [
                "docker.io/library/alpha:1",
                app,
                "localhost:5000/zeta@sha256:00"
            ]
        );
        assert_eq!(store.images().unwrap()[1].1, second);

        assert!(store.remove_image(app).unwrap());
        assert!(!store.remove_image(app).unwrap());
        assert_eq!(store.image(app).unwrap(), None);
        assert_eq!(store.images().unwrap().len(), 2);
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path())
            .unwrap()
            .put_image("docker.io/library/app:latest", &rec("1"))
            .unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.image("docker.io/library/app:latest").unwrap(),
            Some(rec("1"))
        );
    }
}
