//! The file source: Kubernetes manifests from files and directories.
//!
//! [`load`] reads files and directories (recursively: `*.yaml`, `*.yml` and `*.json`, in
//! sorted order, skipping hidden entries such as a ConfigMap mount's `..data`) and parses
//! every document into an [`Object`]. Problems with one document never stop the others: each
//! becomes a [`Diagnostic`] with file and line —
//!
//! - a document that does not parse (bad YAML, a field of the wrong type, an unknown field
//!   in a Weir kind) is an error and is skipped;
//! - a kind Weir does not read is a warning and is ignored;
//! - an unknown field in a Gateway API or core kind is a warning (the field is ignored);
//! - the same object defined twice is a warning; the later definition wins.
//!
//! A namespaced object without `metadata.namespace` lands in `default`. Only a path that
//! cannot be read at all is an [`Error`] (`weir translate` exits non-zero on it).
//!
//! YAML goes through `serde_yaml_ng`, the maintained fork of the archived `serde_yaml`, so
//! manifests parse as they did with the de-facto standard crate. We split multi-document
//! files on `---` ourselves rather than with the parser's document iterator: that iterator
//! stops at the first syntax error, and we want the documents after a bad one to load.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::model::gateway_api::{
    Gateway, GatewayClass, HttpRoute, Namespace, ReferenceGrant, Secret,
};
use crate::model::{
    DEFAULT_NAMESPACE, DirectResponse, HttpListenerOption, Kind, ListenerOption, Object, ObjectKey,
    RouteOption, TypeMetaError, Upstream, VirtualHostOption, compact,
};

use super::SourceEvent;

/// How bad a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Something was ignored; everything else loaded.
    Warning,
    /// A document was skipped.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A problem found in one document of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as it was reached from the given path.
    pub file: PathBuf,
    /// 1-based line the problem is on (or the document starts on, when serde gave no line).
    pub line: usize,
    /// Warning (ignored something) or error (skipped the document).
    pub severity: Severity,
    /// What is wrong, naming the field when there is one.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `file:line: severity: message`, the form editors and CI logs link.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.severity,
            self.message
        )
    }
}

/// A path the file source cannot read. Nothing was loaded; the caller should stop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path, or a directory under it, cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What a load produced: the objects, in file and document order, and the diagnostics.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Every object that parsed, in the order read.
    pub objects: Vec<Object>,
    /// Every problem found, in the order found.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// Whether any document was skipped.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The objects as one relist for the store.
    pub fn into_event(self) -> SourceEvent {
        SourceEvent::Reset(self.objects)
    }
}

/// The syntax of a manifest file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML, possibly several `---`-separated documents.
    Yaml,
    /// JSON, possibly several concatenated values.
    Json,
}

impl Format {
    /// The format a file name implies: JSON for `.json`, YAML otherwise.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Reads every manifest under `paths` (files, or directories walked recursively).
///
/// A file named directly is read whatever its extension; in directories only `*.yaml`,
/// `*.yml` and `*.json` are. Fails only when a path cannot be read.
pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Loaded, Error> {
    let mut files = Vec::new();
    for path in paths {
        collect(path.as_ref(), true, &mut files, &mut BTreeSet::new())?;
    }
    let mut loaded = Loaded::default();
    // Where each key was first defined, to warn about duplicates.
    let mut seen: BTreeMap<ObjectKey, (PathBuf, usize)> = BTreeMap::new();
    for file in files {
        let mut parsed = read_file(&file)?;
        for (object, line) in parsed.objects {
            let key = object.key();
            if let Some((first_file, first_line)) = seen.get(&key) {
                parsed
                    .diagnostics
                    .push(duplicate(&key, &file, line, first_file, *first_line));
            } else {
                seen.insert(key, (file.clone(), line));
            }
            loaded.objects.push(object);
        }
        loaded.diagnostics.append(&mut parsed.diagnostics);
    }
    Ok(loaded)
}

/// The documents of one file: every object that parsed (with the line it starts on) and
/// the file's own diagnostics.
#[derive(Clone, Debug, Default)]
pub(super) struct ParsedFile {
    pub(super) objects: Vec<(Object, usize)>,
    pub(super) diagnostics: Vec<Diagnostic>,
}

/// Reads and parses one manifest file. Fails only when it cannot be read; text that is
/// not UTF-8 is a diagnostic.
pub(super) fn read_file(file: &Path) -> Result<ParsedFile, Error> {
    let bytes = std::fs::read(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(ParsedFile {
            objects: Vec::new(),
            diagnostics: vec![Diagnostic {
                file: file.to_path_buf(),
                line: 1,
                severity: Severity::Error,
                message: "the file is not UTF-8 text; skipped".into(),
            }],
        });
    };
    let mut parser = Parser::new(file);
    parser.parse(&text, Format::of(file));
    Ok(ParsedFile {
        objects: parser.objects,
        diagnostics: parser.diagnostics,
    })
}

/// The warning for `key` defined again at `file:line` after `first_file:first_line`.
pub(super) fn duplicate(
    key: &ObjectKey,
    file: &Path,
    line: usize,
    first_file: &Path,
    first_line: usize,
) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line,
        severity: Severity::Warning,
        message: format!(
            "{key} is also defined at {}:{first_line}; this later definition wins",
            first_file.display()
        ),
    }
}

/// Parses the text of one file (named `file` in diagnostics).
pub fn parse_str(file: &Path, text: &str, format: Format) -> Loaded {
    let mut parser = Parser::new(file);
    parser.parse(text, format);
    Loaded {
        objects: parser.objects.into_iter().map(|(o, _)| o).collect(),
        diagnostics: parser.diagnostics,
    }
}

/// Adds `path` (a file, or the manifests under a directory) to `out`, in sorted order.
/// `visited` holds the canonical directories already walked, so symlink loops end.
pub(super) fn collect(
    path: &Path,
    named: bool,
    out: &mut Vec<PathBuf>,
    visited: &mut BTreeSet<PathBuf>,
) -> Result<(), Error> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if !meta.is_dir() {
        let is_manifest = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["yaml", "yml", "json"]
                .iter()
                .any(|m| e.eq_ignore_ascii_case(m))
        });
        if named || is_manifest {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let canonical = std::fs::canonicalize(path).map_err(read_err)?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        entries.push(entry.path());
    }
    entries.sort();
    for entry in entries {
        collect(&entry, false, out, visited)?;
    }
    Ok(())
}

// === Parsing ===

/// Parses the documents of one file, collecting objects (with the line each starts on)
/// and diagnostics.
struct Parser<'f> {
    file: &'f Path,
    objects: Vec<(Object, usize)>,
    diagnostics: Vec<Diagnostic>,
}

/// One document of a file.
struct Doc<'t> {
    /// The document's text. For YAML its first line is `first_line` of the file; for JSON it
    /// starts somewhere on `first_line`.
    text: &'t str,
    /// 1-based line of the file the text starts on.
    first_line: usize,
    format: Format,
}

impl Doc<'_> {
    /// The file line of a 1-based line within the document.
    fn line(&self, rel: usize) -> usize {
        self.first_line + rel.max(1) - 1
    }

    /// The file line of the document's first non-blank, non-comment line.
    fn start_line(&self) -> usize {
        let rel = self
            .text
            .lines()
            .position(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with('#')
            })
            .unwrap_or(0);
        self.first_line + rel
    }

    /// Best guess at the file line where `key` is written as a mapping key, else the start.
    fn line_of_key(&self, key: &str) -> usize {
        let found = self.text.lines().position(|l| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            match self.format {
                Format::Yaml => t
                    .strip_prefix(key)
                    .or_else(|| t.strip_prefix(&format!("\"{key}\"")))
                    .is_some_and(|rest| rest.trim_start().starts_with(':')),
                Format::Json => t.contains(&format!("\"{key}\"")),
            }
        });
        found.map_or_else(|| self.start_line(), |i| self.first_line + i)
    }
}

/// Where a document came from, for decoding: its text, or (for the items of a `List`) a
/// value already parsed.
enum Input<'a> {
    Text(&'a Doc<'a>),
    Value(serde_json::Value),
}

/// A document that failed to decode: where (a line within the document, if serde said) and
/// why.
struct DecodeError {
    rel_line: Option<usize>,
    message: String,
}

impl<'f> Parser<'f> {
    fn new(file: &'f Path) -> Self {
        Self {
            file,
            objects: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    fn report(&mut self, line: usize, severity: Severity, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            severity,
            message: message.into(),
        });
    }

    fn parse(&mut self, text: &str, format: Format) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        match format {
            Format::Yaml => {
                let docs = split_yaml(text);
                for (doc_text, first_line) in &docs {
                    let doc = Doc {
                        text: doc_text,
                        first_line: *first_line,
                        format,
                    };
                    self.parse_yaml_doc(&doc);
                }
            }
            Format::Json => self.parse_json(text),
        }
    }

    fn parse_yaml_doc(&mut self, doc: &Doc<'_>) {
        let blank = doc.text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        });
        if blank {
            return;
        }
        let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(doc.text) {
            Ok(v) => v,
            Err(e) => {
                let line = e
                    .location()
                    .map_or(doc.start_line(), |l| doc.line(l.line()));
                self.report(
                    line,
                    Severity::Error,
                    format!("invalid YAML: {}; skipped", yaml_message(&e)),
                );
                return;
            }
        };
        if value.is_null() {
            return;
        }
        // Kubernetes manifests have string keys, so this conversion only fails on exotic
        // YAML (non-string keys, NaN); such a document is reported below as unparseable.
        let json = serde_json::to_value(&value).unwrap_or(serde_json::Value::Null);
        self.parse_doc(doc, json);
    }

    fn parse_json(&mut self, text: &str) {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
        loop {
            let start = stream.byte_offset();
            match stream.next() {
                None => break,
                Some(Ok(value)) => {
                    let end = stream.byte_offset();
                    let first_line = text[..start].matches('\n').count() + 1;
                    let doc = Doc {
                        text: &text[start..end],
                        first_line,
                        format: Format::Json,
                    };
                    self.parse_doc(&doc, value);
                }
                Some(Err(e)) => {
                    // A JSON syntax error leaves no safe place to resume; report and stop.
                    self.report(
                        e.line().max(1),
                        Severity::Error,
                        format!(
                            "invalid JSON: {}; the rest of the file is skipped",
                            json_message(&e)
                        ),
                    );
                    break;
                }
            }
        }
    }

    /// Turns one parsed document into objects (several, for a `List`).
    fn parse_doc(&mut self, doc: &Doc<'_>, value: serde_json::Value) {
        let start = doc.start_line();
        let Some(map) = value.as_object() else {
            self.report(
                start,
                Severity::Error,
                "expected a Kubernetes object (a mapping with apiVersion and kind); skipped",
            );
            return;
        };
        let api_version = map.get("apiVersion").and_then(|v| v.as_str());
        let kind = map.get("kind").and_then(|v| v.as_str());
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            let missing = if api_version.is_none() {
                "apiVersion"
            } else {
                "kind"
            };
            self.report(
                start,
                Severity::Error,
                format!("the document has no `{missing}` string; skipped"),
            );
            return;
        };
        if api_version == "v1" && kind == "List" {
            let items = match map.get("items") {
                Some(serde_json::Value::Array(items)) => items.clone(),
                _ => {
                    self.report(
                        start,
                        Severity::Error,
                        "a List needs an `items` list; skipped",
                    );
                    return;
                }
            };
            for (i, item) in items.into_iter().enumerate() {
                let str_of = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                let (api_version, kind) = (str_of("apiVersion"), str_of("kind"));
                let prefix = format!("items[{i}]: ");
                self.parse_item(doc, Input::Value(item), &api_version, &kind, &prefix);
            }
            return;
        }
        let (api_version, kind) = (api_version.to_string(), kind.to_string());
        self.parse_item(doc, Input::Text(doc), &api_version, &kind, "");
    }

    /// Decodes one object (a whole document, or one item of a List) and checks its metadata.
    fn parse_item(
        &mut self,
        doc: &Doc<'_>,
        input: Input<'_>,
        api_version: &str,
        kind: &str,
        prefix: &str,
    ) {
        let start = doc.start_line();
        let kind = match Kind::from_type_meta(api_version, kind) {
            Ok(k) => k,
            Err(e @ TypeMetaError::UnknownKind { .. }) => {
                self.report(
                    doc.line_of_key("kind"),
                    Severity::Warning,
                    format!("{prefix}{e}"),
                );
                return;
            }
            Err(e) => {
                self.report(
                    doc.line_of_key("apiVersion"),
                    Severity::Error,
                    format!("{prefix}{e}; skipped"),
                );
                return;
            }
        };
        let mut ignored = Vec::new();
        let mut object = match decode_object(kind, &input, &mut ignored) {
            Ok(o) => o,
            Err(e) => {
                let line = match (&input, e.rel_line) {
                    (Input::Text(_), Some(rel)) => doc.line(rel),
                    _ => start,
                };
                self.report(
                    line,
                    Severity::Error,
                    format!("{prefix}{kind}: {}; skipped", e.message),
                );
                return;
            }
        };
        // Kubernetes' own fields that the root types leave to their type meta, and status,
        // which we compute rather than read (K8sGateway writes a different shape there).
        ignored.retain(|p| p != "apiVersion" && p != "kind" && !is_under(p, "status"));
        if kind.is_weir() && !ignored.is_empty() {
            let line = doc.line_of_key(last_segment(&ignored[0]));
            let fields: Vec<String> = ignored.iter().map(|p| format!("`{p}`")).collect();
            self.report(
                line,
                Severity::Error,
                format!(
                    "{prefix}{kind}: unknown field{} {}; skipped",
                    if fields.len() > 1 { "s" } else { "" },
                    fields.join(", ")
                ),
            );
            return;
        }
        for path in &ignored {
            self.report(
                doc.line_of_key(last_segment(path)),
                Severity::Warning,
                format!("{prefix}{kind}: unknown field `{path}` ignored"),
            );
        }
        let meta = object.metadata_mut();
        if meta.name.as_deref().unwrap_or_default().is_empty() {
            self.report(
                start,
                Severity::Error,
                format!("{prefix}{kind}: `metadata.name` is required; skipped"),
            );
            return;
        }
        if kind.is_namespaced() {
            if meta.namespace.as_deref().unwrap_or_default().is_empty() {
                meta.namespace = Some(DEFAULT_NAMESPACE.to_string());
            }
        } else {
            meta.namespace = None;
        }
        self.objects.push((object, start));
    }
}

fn is_under(path: &str, root: &str) -> bool {
    path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

fn last_segment(path: &str) -> &str {
    let tail = path.rsplit('.').next().unwrap_or(path);
    tail.split('[').next().unwrap_or(tail)
}

/// Splits YAML text into documents at `---` (and `...`) lines, keeping line numbers: each
/// document's text starts with its marker line, the marker blanked out.
fn split_yaml(text: &str) -> Vec<(String, usize)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 1;
    for (i, line) in text.lines().enumerate() {
        let marker = ["---", "..."].iter().any(|m| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        });
        if marker {
            docs.push((std::mem::take(&mut current), first_line));
            first_line = i + 1;
            // Keep whatever follows the marker (`--- {a: 1}`) in place; blank a `...` line.
            if let Some(rest) = line.strip_prefix("---") {
                current.push_str("   ");
                current.push_str(rest);
            }
            current.push('\n');
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((current, first_line));
    docs
}

/// Decodes one object of a known kind, collecting the paths of fields nothing consumed.
fn decode_object(
    kind: Kind,
    input: &Input<'_>,
    ignored: &mut Vec<String>,
) -> Result<Object, DecodeError> {
    Ok(match kind {
        Kind::GatewayClass => decode::<GatewayClass>(input, ignored)?.into(),
        Kind::Gateway => decode::<Gateway>(input, ignored)?.into(),
        Kind::HttpRoute => decode::<HttpRoute>(input, ignored)?.into(),
        Kind::ReferenceGrant => decode::<ReferenceGrant>(input, ignored)?.into(),
        Kind::Upstream => decode::<Upstream>(input, ignored)?.into(),
        Kind::RouteOption => decode::<RouteOption>(input, ignored)?.into(),
        Kind::VirtualHostOption => decode::<VirtualHostOption>(input, ignored)?.into(),
        Kind::ListenerOption => decode::<ListenerOption>(input, ignored)?.into(),
        Kind::HttpListenerOption => decode::<HttpListenerOption>(input, ignored)?.into(),
        Kind::DirectResponse => decode::<DirectResponse>(input, ignored)?.into(),
        Kind::Namespace => decode::<Namespace>(input, ignored)?.into(),
        Kind::Service => compact::service(decode(input, ignored)?).into(),
        Kind::EndpointSlice => compact::endpoint_slice(decode(input, ignored)?).into(),
        Kind::Secret => decode::<Secret>(input, ignored)?.into(),
    })
}

fn decode<T: DeserializeOwned>(
    input: &Input<'_>,
    ignored: &mut Vec<String>,
) -> Result<T, DecodeError> {
    let on_ignored = |path: serde_ignored::Path<'_>| ignored.push(path_string(&path));
    match input {
        Input::Text(doc) if doc.format == Format::Yaml => {
            let de = serde_yaml_ng::Deserializer::from_str(doc.text);
            serde_ignored::deserialize(de, on_ignored).map_err(|e| DecodeError {
                rel_line: e.location().map(|l| l.line()),
                message: yaml_message(&e),
            })
        }
        Input::Text(doc) => {
            let mut de = serde_json::Deserializer::from_str(doc.text);
            serde_ignored::deserialize(&mut de, on_ignored).map_err(|e| DecodeError {
                rel_line: Some(e.line()),
                message: json_message(&e),
            })
        }
        Input::Value(value) => {
            serde_ignored::deserialize(value.clone(), on_ignored).map_err(|e| DecodeError {
                rel_line: None,
                message: json_message(&e),
            })
        }
    }
}

/// Renders a serde_ignored path as `spec.rules[0].matches`.
fn path_string(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_string(parent)),
        Path::Map { parent, key } => {
            let p = path_string(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => path_string(parent),
    }
}

/// A serde_yaml_ng error without its ` at line L column C` suffixes: the diagnostic carries
/// the file's line, which differs from the document's.
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    strip_positions(&e.to_string())
}

/// A serde_json error without its ` at line L column C` suffix.
fn json_message(e: &serde_json::Error) -> String {
    strip_positions(&e.to_string())
}

fn strip_positions(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let tail = &after[digits..];
        let skipped = tail.strip_prefix(" column ").map(|t| {
            let n = t.bytes().take_while(u8::is_ascii_digit).count();
            &t[n..]
        });
        match skipped {
            Some(t) if digits > 0 => rest = t,
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_KINDS: &str = include_str!("../../tests/fixtures/model/all-kinds.yaml");

    fn mk_parse(text: impl ToString) -> Loaded {
        parse_str(Path::new("test.yaml"), &text.to_string(), Format::Yaml)
    }

    fn mk_direct_response(name: impl ToString, status: impl ToString) -> String {
        format!(
            "apiVersion: gateway.weir.dev/v1alpha1\nkind: DirectResponse\nmetadata:\n  name: {}\n  namespace: a\nspec:\n  status: {}\n",
            name.to_string(),
            status.to_string()
        )
    }

    fn shown(loaded: &Loaded) -> Vec<String> {
        loaded.diagnostics.iter().map(ToString::to_string).collect()
    }

    fn keys(loaded: &Loaded) -> Vec<String> {
        loaded.objects.iter().map(|o| o.key().to_string()).collect()
    }

    #[test]
    fn every_kind_parses_including_k8sgateway_api_versions() {
        let loaded = mk_parse(ALL_KINDS);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", shown(&loaded));
        assert_eq!(
            keys(&loaded),
            [
                "GatewayClass/weir",
                "Gateway/infra/gw",
                "HTTPRoute/apps/web",
                "ReferenceGrant/infra/from-apps",
                "Upstream/apps/petstore",
                "Upstream/apps/web-kube",
                "RouteOption/apps/faults",
                "VirtualHostOption/infra/cors",
                "ListenerOption/infra/buffers",
                "HttpListenerOption/infra/hcm",
                "DirectResponse/apps/maintenance",
                "Namespace/apps",
                "Service/apps/web",
                "EndpointSlice/apps/web-abc12",
                "Secret/infra/example-cert",
            ]
        );
        let kinds: BTreeSet<Kind> = loaded.objects.iter().map(Object::kind).collect();
        assert_eq!(kinds.len(), Kind::ALL.len());
        // The Weir kinds also validate.
        for o in &loaded.objects {
            let ns = o.namespace().unwrap_or_default();
            let ok = match o {
                Object::Upstream(u) => u.spec.validate().map(drop),
                Object::RouteOption(r) => r.spec.validate(ns).map(drop),
                Object::VirtualHostOption(r) => r.spec.validate(ns).map(drop),
                Object::ListenerOption(r) => r.spec.validate(ns).map(drop),
                Object::HttpListenerOption(r) => r.spec.validate(ns).map(drop),
                Object::DirectResponse(d) => d.spec.validate().map(drop),
                _ => Ok(()),
            };
            assert!(ok.is_ok(), "{o}: {ok:?}");
        }
        let secret = loaded.objects.last().and_then(Object::as_secret).unwrap();
        assert_eq!(secret.value("tls.key"), Some(&b"key"[..]));
    }

    #[test]
    fn malformed_document_in_the_middle_is_reported_at_its_line_and_the_rest_load() {
        let text = format!(
            "{}---\n# a broken one\napiVersion: gateway.weir.dev/v1alpha1\nkind: DirectResponse\nmetadata:\n  name: bad\nspec:\n  status: [nope\n---\n{}",
            mk_direct_response("first", 200),
            mk_direct_response("last", 404)
        );
        let loaded = mk_parse(text);
        assert_eq!(
            keys(&loaded),
            ["DirectResponse/a/first", "DirectResponse/a/last"]
        );
        assert_eq!(loaded.diagnostics.len(), 1, "{:#?}", shown(&loaded));
        let d = &loaded.diagnostics[0];
        assert_eq!(d.severity, Severity::Error);
        // The document starts on line 8; `status: [nope` is line 15, the parser notices on 16.
        assert!((15..=16).contains(&d.line), "{d}");
        assert!(!d.message.contains("at line"), "{d}");
    }

    #[test]
    fn wrongly_typed_field_is_reported_with_its_path_and_line() {
        let text = format!(
            "{}---\n{}",
            mk_direct_response("first", 200),
            mk_direct_response("bad", "\"soon\"")
        );
        let loaded = mk_parse(text);
        assert_eq!(keys(&loaded), ["DirectResponse/a/first"]);
        let d = &loaded.diagnostics[0];
        assert_eq!(d.line, 15, "{d}");
        assert!(d.message.contains("spec.status"), "{d}");
        assert!(d.message.starts_with("DirectResponse: "), "{d}");
        assert!(d.to_string().starts_with("test.yaml:15: error: "), "{d}");
    }

    #[test]
    fn unknown_kind_is_a_warning_and_is_ignored() {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n---\n{}",
            mk_direct_response("dr", 200)
        );
        let loaded = mk_parse(text);
        assert_eq!(keys(&loaded), ["DirectResponse/a/dr"]);
        assert_eq!(
            shown(&loaded),
            ["test.yaml:2: warning: v1 ConfigMap is not a kind Weir reads; ignored"]
        );
        assert!(!loaded.has_errors());
    }

    #[test]
    fn known_kind_at_an_unknown_version_is_an_error() {
        let loaded = mk_parse(
            "apiVersion: gateway.weir.dev/v2\nkind: DirectResponse\nmetadata:\n  name: x\nspec:\n  status: 200\n",
        );
        assert!(loaded.objects.is_empty());
        assert_eq!(loaded.diagnostics[0].severity, Severity::Error);
        assert_eq!(loaded.diagnostics[0].line, 1);
    }

    #[test]
    fn unknown_field_in_a_weir_kind_is_an_error_naming_it() {
        let loaded = mk_parse(
            "apiVersion: gateway.weir.dev/v1alpha1\nkind: Upstream\nmetadata:\n  name: u\nspec:\n  static: {}\n  connectionConfig:\n    connectTimout: 1s\n",
        );
        assert!(loaded.objects.is_empty());
        let d = &loaded.diagnostics[0];
        assert_eq!(d.severity, Severity::Error);
        assert_eq!(d.line, 8, "{d}");
        assert!(d.message.contains("connectTimout"), "{d}");
    }

    #[test]
    fn unknown_top_level_field_in_a_weir_kind_is_an_error_naming_it() {
        let loaded = mk_parse(
            "apiVersion: gateway.weir.dev/v1alpha1\nkind: DirectResponse\nmetadata:\n  name: x\nspec:\n  status: 200\nspecs:\n  status: 201\n",
        );
        assert!(loaded.objects.is_empty());
        let d = &loaded.diagnostics[0];
        assert_eq!(d.line, 7, "{d}");
        assert!(d.message.contains("unknown field `specs`"), "{d}");
    }

    #[test]
    fn unknown_field_in_a_gateway_api_kind_is_a_warning() {
        let loaded = mk_parse(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n  parentRefs:\n  - name: gw\n  rules:\n  - backendRef:\n      name: web\n",
        );
        assert_eq!(keys(&loaded), ["HTTPRoute/default/r"]);
        assert_eq!(
            shown(&loaded),
            ["test.yaml:9: warning: HTTPRoute: unknown field `spec.rules[0].backendRef` ignored"]
        );
    }

    #[test]
    fn status_written_by_k8sgateway_is_not_an_unknown_field() {
        let loaded = mk_parse(format!(
            "{}status:\n  statuses:\n    gloo-system:\n      state: Accepted\n",
            mk_direct_response("dr", 200)
        ));
        assert_eq!(keys(&loaded), ["DirectResponse/a/dr"]);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", shown(&loaded));
    }

    #[test]
    fn missing_namespace_defaults_to_default_and_cluster_kinds_have_none() {
        let loaded = mk_parse(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n  namespace: ignored\n",
        );
        assert_eq!(keys(&loaded), ["Service/default/web", "Namespace/apps"]);
        assert_eq!(
            loaded.objects[0].metadata().namespace.as_deref(),
            Some("default")
        );
        assert_eq!(loaded.objects[1].metadata().namespace, None);
    }

    #[test]
    fn missing_name_is_an_error() {
        let loaded = mk_parse("apiVersion: v1\nkind: Service\nmetadata:\n  namespace: a\n");
        assert!(loaded.objects.is_empty());
        assert!(loaded.diagnostics[0].message.contains("metadata.name"));
    }

    #[test]
    fn documents_without_kind_or_not_mappings_are_errors_and_empty_ones_are_skipped() {
        let loaded = mk_parse("---\n# only a comment\n---\n\n---\n- a list\n---\nmetadata: {}\n");
        assert!(loaded.objects.is_empty());
        let lines: Vec<usize> = loaded.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, [6, 8], "{:#?}", shown(&loaded));
    }

    #[test]
    fn marker_lines_keep_trailing_content_and_line_numbers() {
        let split = split_yaml("a: 1\n--- # c\nb: 2\n---\n...\nc: 3\n");
        let starts: Vec<usize> = split.iter().map(|(_, l)| *l).collect();
        assert_eq!(starts, [1, 2, 4, 5]);
        assert_eq!(split[1].0, "    # c\nb: 2\n");
    }

    #[test]
    fn json_files_hold_one_or_more_objects() {
        let text = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}
{"apiVersion": "v1", "kind": "Service",
 "metadata": {"name": "b"}, "spec": {"ports": "many"}}
{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"}}"#;
        let loaded = parse_str(Path::new("x.json"), text, Format::Json);
        assert_eq!(keys(&loaded), ["Service/default/a", "Service/default/c"]);
        let d = &loaded.diagnostics[0];
        assert_eq!(d.line, 3, "{d}");
        assert!(d.message.contains("invalid type"), "{d}");
    }

    #[test]
    fn lists_are_read_item_by_item() {
        let loaded = mk_parse(format!(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: b\n- {}\n",
            "{apiVersion: gateway.weir.dev/v1alpha1, kind: DirectResponse, metadata: {name: c}, spec: {status: 200, extra: 1}}"
        ));
        assert_eq!(keys(&loaded), ["Service/default/a"]);
        let msgs: Vec<&str> = loaded
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert!(msgs[0].starts_with("items[1]: "), "{msgs:?}");
        assert!(
            msgs[1].starts_with("items[2]: DirectResponse: ") && msgs[1].contains("extra"),
            "{msgs:?}"
        );
    }

    #[test]
    fn directories_are_read_recursively_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/nested")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        std::fs::write(
            root.join("b/nested/z.yml"),
            mk_direct_response("nested", 200),
        )
        .unwrap();
        std::fs::write(root.join("a.yaml"), mk_direct_response("a", 200)).unwrap();
        std::fs::write(
            root.join("c.json"),
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#,
        )
        .unwrap();
        std::fs::write(root.join("notes.txt"), "not a manifest").unwrap();
        std::fs::write(
            root.join(".hidden/h.yaml"),
            mk_direct_response("hidden", 200),
        )
        .unwrap();
        // A duplicate: the later file wins, with a warning.
        std::fs::write(root.join("d.yaml"), mk_direct_response("a", 503)).unwrap();
        let loaded = load(&[root]).unwrap();
        assert_eq!(
            keys(&loaded),
            [
                "DirectResponse/a/a",
                "DirectResponse/a/nested",
                "Namespace/c",
                "DirectResponse/a/a",
            ]
        );
        assert_eq!(loaded.diagnostics.len(), 1);
        let d = &loaded.diagnostics[0];
        assert!(
            d.file.ends_with("d.yaml") && d.severity == Severity::Warning,
            "{d}"
        );
        assert!(d.message.contains("a.yaml:1"), "{d}");
        // A file named directly is read whatever its extension.
        let named = load(&[root.join("notes.txt")]).unwrap();
        assert!(named.objects.is_empty());
        assert_eq!(named.diagnostics.len(), 1);
    }

    #[test]
    fn unreadable_path_is_an_error() {
        let err = load(&["/nonexistent/weir/manifests"]).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/weir/manifests"),
            "{err}"
        );
    }

    #[test]
    fn loaded_objects_fill_the_store_as_one_reset() {
        let mut store = crate::store::Store::new();
        let changed = store.handle(mk_parse(ALL_KINDS).into_event());
        assert_eq!(changed.len(), Kind::ALL.len() + 1);
        assert_eq!(store.endpoint_slices_for("apps", "web").count(), 1);
        assert!(store.upstream("apps", "petstore").is_some());
    }
}
