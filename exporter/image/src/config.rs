//! The image config as exported: diffIDs, `created`, and a history that agrees with the
//! layers.

use strata_digest::Digest;
use strata_oci::{History, ImageConfig, RootFs};

use crate::{time, ImageError, ImageOptions};

/// The `comment` of history entries the exporter adds for layers the config's history
/// does not account for.
pub const GENERATED_HISTORY_COMMENT: &str = "strata.exporter.image.v0";

/// Fill in what the export decides:
/// - `rootfs.diff_ids` become the exported diffIDs, in layer order;
/// - `created` becomes SOURCE_DATE_EPOCH (as `YYYY-MM-DDTHH:MM:SSZ`) or `opts.created`;
///   without either it is left as given;
/// - history entries without `created` get the image's; with an epoch, entries later
///   than it are clamped to it (BuildKit does the same);
/// - the entries that are not `empty_layer` must match the layers one to one: missing
///   ones are appended (as BuildKit does, with [`GENERATED_HISTORY_COMMENT`]); more of
///   them than layers is an error, since which ones are wrong cannot be known.
pub(crate) fn finish_config(
    mut config: ImageConfig,
    diff_ids: Vec<Digest>,
    opts: &ImageOptions,
) -> Result<ImageConfig, ImageError> {
    let created = image_created(opts)?;
    if let Some(c) = &created {
        config.created = Some(c.clone());
    }

    let layers = diff_ids.len();
    let non_empty = config.history.iter().filter(|h| !h.empty_layer).count();
    if non_empty > layers {
        return Err(ImageError::HistoryMismatch { layers, non_empty });
    }
    config.history.extend((non_empty..layers).map(|_| History {
        comment: Some(GENERATED_HISTORY_COMMENT.into()),
        ..History::default()
    }));

    for h in &mut config.history {
        let later_than_epoch = |c: &str| {
            opts.source_date_epoch.is_some_and(|epoch| {
                time::parse_rfc3339(c).is_some_and(|(s, n)| s > epoch || (s == epoch && n > 0))
            })
        };
        match &h.created {
            None => h.created = created.clone(),
            Some(c) if later_than_epoch(c) => h.created = created.clone(),
            Some(_) => {}
        }
    }

    config.rootfs = RootFs {
        kind: "layers".into(),
        diff_ids,
    };
    Ok(config)
}

/// The image's `created`: the epoch wins over `opts.created`.
fn image_created(opts: &ImageOptions) -> Result<Option<String>, ImageError> {
    if let Some(epoch) = opts.source_date_epoch {
        return time::format_unix(epoch)
            .map(Some)
            .ok_or(ImageError::InvalidEpoch { epoch });
    }
    match &opts.created {
        Some(c) if time::parse_rfc3339(c).is_none() => {
            Err(ImageError::InvalidCreated { value: c.clone() })
        }
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(created: Option<&str>, empty: bool) -> History {
        History {
            created: created.map(str::to_string),
            created_by: Some("x".into()),
            empty_layer: empty,
            ..History::default()
        }
    }

    fn ids(n: u8) -> Vec<Digest> {
        (0..n).map(|i| strata_digest::sha256([i])).collect()
    }

    #[test]
    fn epoch_sets_created_and_clamps_history() {
        let cfg = ImageConfig {
            created: Some("2024-01-01T00:00:00Z".into()),
            history: vec![
                hist(Some("1960-01-01T00:00:00Z"), false),
                hist(Some("2024-01-01T00:00:00Z"), true),
                hist(None, false),
                hist(Some("1970-01-01T00:01:40.5Z"), true),
                hist(Some("not a time"), true),
            ],
            ..ImageConfig::default()
        };
        let opts = ImageOptions {
            source_date_epoch: Some(100),
            created: Some("2030-01-01T00:00:00Z".into()),
            ..ImageOptions::default()
        };
        let out = finish_config(cfg, ids(2), &opts).unwrap();
        assert_eq!(out.created.as_deref(), Some("1970-01-01T00:01:40Z"));
        let times: Vec<_> = out.history.iter().map(|h| h.created.as_deref()).collect();
        assert_eq!(
            times,
            [
                Some("1960-01-01T00:00:00Z"),
                Some("1970-01-01T00:01:40Z"),
                Some("1970-01-01T00:01:40Z"),
                Some("1970-01-01T00:01:40Z"),
                Some("not a time"),
            ]
        );
        assert_eq!(out.rootfs.diff_ids, ids(2));
    }

    #[test]
    fn created_without_epoch_fills_only_missing_history_times() {
        let cfg = ImageConfig {
            history: vec![hist(Some("2020-01-01T00:00:00Z"), false), hist(None, true)],
            ..ImageConfig::default()
        };
        let opts = ImageOptions {
            created: Some("2025-05-05T05:05:05.5Z".into()),
            ..ImageOptions::default()
        };
        let out = finish_config(cfg, ids(1), &opts).unwrap();
        assert_eq!(out.created.as_deref(), Some("2025-05-05T05:05:05.5Z"));
        assert_eq!(
            out.history[0].created.as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        assert_eq!(
            out.history[1].created.as_deref(),
            Some("2025-05-05T05:05:05.5Z")
        );

        let bad = ImageOptions {
            created: Some("yesterday".into()),
            ..ImageOptions::default()
        };
        assert!(matches!(
            finish_config(ImageConfig::default(), vec![], &bad),
            Err(ImageError::InvalidCreated { .. })
        ));
    }

    #[test]
    fn missing_history_entries_are_appended() {
        let cfg = ImageConfig {
            history: vec![hist(None, false), hist(None, true)],
            ..ImageConfig::default()
        };
        let out = finish_config(cfg, ids(3), &ImageOptions::default()).unwrap();
        assert_eq!(out.history.len(), 4);
        assert_eq!(out.history.iter().filter(|h| !h.empty_layer).count(), 3);
        assert_eq!(
            out.history[3].comment.as_deref(),
            Some(GENERATED_HISTORY_COMMENT)
        );
        assert_eq!(out.history[1].created_by.as_deref(), Some("x"));
    }

    #[test]
    fn surplus_history_layers_are_an_error() {
        let cfg = ImageConfig {
            history: vec![hist(None, false), hist(None, false), hist(None, true)],
            ..ImageConfig::default()
        };
        let err = finish_config(cfg, ids(1), &ImageOptions::default()).unwrap_err();
        assert!(matches!(
            err,
            ImageError::HistoryMismatch {
                layers: 1,
                non_empty: 2
            }
        ));
        assert_eq!(
            err.to_string(),
            "image history has 2 entries that are not empty_layer but the image has 1 layers"
        );
    }

    #[test]
    fn out_of_range_epoch_is_an_error() {
        let opts = ImageOptions {
            source_date_epoch: Some(i64::MAX),
            ..ImageOptions::default()
        };
        assert!(matches!(
            finish_config(ImageConfig::default(), vec![], &opts),
            Err(ImageError::InvalidEpoch { .. })
        ));
    }
}
