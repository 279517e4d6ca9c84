//! Builds the course book (`book/`) with the mdbook 0.5 library and checks what
//! mdbook itself lets through.
//!
//! mdbook fails the build on some problems and only logs others, so this test
//! adds its own checks and fails on every one of them:
//!
//! | problem                                   | mdbook 0.5 alone              | caught by                 |
//! |-------------------------------------------|-------------------------------|---------------------------|
//! | a SUMMARY.md chapter whose file is missing | creates an empty file (!)     | `create-missing = false` + [`check_summary`] |
//! | a draft chapter (`- [Title]()`)            | renders a disabled entry      | [`check_summary`]         |
//! | `{{#include}}` of a missing file           | logs an error, builds         | [`check_includes`]        |
//! | `{{#include file:anchor}}`, no such anchor | includes nothing, builds      | [`check_includes`]        |
//! | a link to a missing chapter or `#fragment` | builds                        | [`check_rendered_links`]  |
//! | a missing image                            | builds                        | [`check_rendered_links`]  |
//! | a Rust listing pasted instead of included  | builds                        | [`check_rust_listings`]   |
//!
//! Links are checked on the rendered HTML, so heading ids are exactly the ones
//! mdbook generates. The negative tests at the end build tiny books that each
//! break one rule and prove that the matching check fires.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use mdbook_driver::MDBook;
use mdbook_driver::book::{BookItem, Chapter};
use mdbook_driver::config::Config;
use regex::Regex;

/// The real book, next to this crate.
fn book_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("book")
}

/// Checks and builds the book at `root` into `out`; every problem found, or none.
fn check_book(root: &Path, out: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let src = root.join("src");
    check_summary(&src, &mut problems);

    let mut config = match Config::from_disk(root.join("book.toml")) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("book.toml: {e:#}"));
            return problems;
        }
    };
    // Never invent a missing chapter, and never write into book/book.
    config.build.create_missing = false;
    config.build.build_dir = out.to_path_buf();

    let book = match MDBook::load_with_config(root, config) {
        Ok(b) => b,
        Err(e) => {
            problems.push(format!("mdbook cannot load the book: {e:#}"));
            return problems;
        }
    };
    let chapters: Vec<&Chapter> = book
        .iter()
        .filter_map(|item| match item {
            BookItem::Chapter(ch) => Some(ch),
            _ => None,
        })
        .collect();
    for ch in &chapters {
        let Some(path) = &ch.path else { continue };
        check_includes(&src, path, &ch.content, &mut problems);
        check_rust_listings(path, &ch.content, &mut problems);
    }

    if let Err(e) = book.build() {
        problems.push(format!("mdbook build failed: {e:#}"));
        return problems;
    }
    let html_root = book.build_dir_for("html");
    for ch in &chapters {
        if let Some(path) = &ch.path {
            check_rendered_links(&html_root, path, &mut problems);
        }
    }
    problems
}

static SUMMARY_LINK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([^\]]*)\]\(([^)]*)\)").unwrap());

/// Every chapter named in SUMMARY.md exists; none is a draft.
fn check_summary(src: &Path, problems: &mut Vec<String>) {
    let summary = match fs::read_to_string(src.join("SUMMARY.md")) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("SUMMARY.md: {e}"));
            return;
        }
    };
    for (n, line) in summary.lines().enumerate() {
        for cap in SUMMARY_LINK.captures_iter(line) {
            let (title, target) = (&cap[1], cap[2].trim());
            if target.is_empty() {
                problems.push(format!(
                    "SUMMARY.md:{}: chapter {title:?} is a draft with no file",
                    n + 1
                ));
            } else if !src.join(target).is_file() {
                problems.push(format!(
                    "SUMMARY.md:{}: chapter {title:?} names {target}, which does not exist",
                    n + 1
                ));
            }
        }
    }
}

/// mdbook's own link syntax: an escaped `\{{#...}}` is left alone.
static MDBOOK_LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\\\{\{#.*?\}\}|\{\{\s*#(include|rustdoc_include)\s+([^}]+)\}\}").unwrap()
});
/// mdbook's anchor markers.
static ANCHOR_START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"ANCHOR:\s*([\w_-]+)").unwrap());
static ANCHOR_END: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"ANCHOR_END:\s*([\w_-]+)").unwrap());

/// Every `{{#include path:anchor}}` names an existing file with an
/// `ANCHOR: anchor` line followed by an `ANCHOR_END: anchor` line.
/// Includes by line numbers are refused: they silently drift as code changes.
fn check_includes(src: &Path, chapter: &Path, content: &str, problems: &mut Vec<String>) {
    let dir = src.join(chapter).parent().map(Path::to_path_buf).unwrap_or_default();
    for cap in MDBOOK_LINK.captures_iter(content) {
        let Some(arg) = cap.get(2) else { continue }; // escaped
        let arg = arg.as_str().trim();
        let (file, selector) = match arg.split_once(':') {
            Some((f, s)) => (f, Some(s)),
            None => (arg, None),
        };
        let path = dir.join(file);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!(
                    "{}: include {arg:?}: cannot read {}: {e}",
                    chapter.display(),
                    normalize(&path).display()
                ));
                continue;
            }
        };
        let Some(anchor) = selector else { continue };
        if anchor.starts_with(|c: char| c.is_ascii_digit() || c == ':') {
            problems.push(format!(
                "{}: include {arg:?} selects lines by number; put ANCHOR comments in the code instead",
                chapter.display()
            ));
            continue;
        }
        match anchor_lines(&text, anchor) {
            AnchorState::Found => {}
            AnchorState::Missing => problems.push(format!(
                "{}: include {arg:?}: no `ANCHOR: {anchor}` in {file}",
                chapter.display()
            )),
            AnchorState::Unclosed => problems.push(format!(
                "{}: include {arg:?}: `ANCHOR: {anchor}` has no `ANCHOR_END: {anchor}` after it in {file}",
                chapter.display()
            )),
        }
    }
}

enum AnchorState {
    Found,
    Missing,
    Unclosed,
}

fn anchor_lines(text: &str, anchor: &str) -> AnchorState {
    let mut started = false;
    for line in text.lines() {
        if started {
            if ANCHOR_END.captures(line).is_some_and(|c| &c[1] == anchor) {
                return AnchorState::Found;
            }
        } else if ANCHOR_START.captures(line).is_some_and(|c| &c[1] == anchor) {
            started = true;
        }
    }
    if started { AnchorState::Unclosed } else { AnchorState::Missing }
}

/// A fenced Rust code block holds only includes: listings come from compiled,
/// tested code, never pasted into a chapter.
fn check_rust_listings(chapter: &Path, content: &str, problems: &mut Vec<String>) {
    let mut fence: Option<(String, bool, usize)> = None; // (marker, is rust, start line)
    for (n, line) in content.lines().enumerate() {
        let trimmed = line.trim_start();
        match &fence {
            None => {
                if let Some(marker) = fence_marker(trimmed) {
                    let info = trimmed[marker.len()..].trim();
                    let lang = info.split([',', ' ']).next().unwrap_or("");
                    fence = Some((marker, lang == "rust", n + 1));
                }
            }
            Some((marker, is_rust, start)) => {
                if trimmed.starts_with(marker.as_str()) && trimmed[marker.len()..].trim().is_empty()
                {
                    fence = None;
                } else if *is_rust
                    && !trimmed.is_empty()
                    && !MDBOOK_LINK.find(trimmed).is_some_and(|m| m.range() == (0..trimmed.len()))
                {
                    problems.push(format!(
                        "{}:{}: the Rust listing starting at line {start} has pasted code; include it from the workspace with an ANCHOR",
                        chapter.display(),
                        n + 1
                    ));
                    fence = Some((marker.clone(), false, *start)); // one report per listing
                }
            }
        }
    }
}

fn fence_marker(line: &str) -> Option<String> {
    for c in ['`', '~'] {
        let n = line.chars().take_while(|&x| x == c).count();
        if n >= 3 {
            return Some(c.to_string().repeat(n));
        }
    }
    None
}

static HTML_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\s(?:href|src)="([^"]*)""#).unwrap());

/// Every relative link and image in a rendered chapter points at a file of the
/// built book, and every `#fragment` at an `id` in its target page.
fn check_rendered_links(html_root: &Path, chapter: &Path, problems: &mut Vec<String>) {
    let page = html_root.join(chapter).with_extension("html");
    let html = match fs::read_to_string(&page) {
        Ok(h) => h,
        Err(e) => {
            problems.push(format!("{}: rendered page missing: {e}", chapter.display()));
            return;
        }
    };
    // Only the chapter's own content; the navigation chrome is mdbook's.
    let main = match (html.find("<main>"), html.rfind("</main>")) {
        (Some(a), Some(b)) if a < b => &html[a..b],
        _ => html.as_str(),
    };
    let dir = page.parent().unwrap_or(html_root);
    let mut links: Vec<String> =
        HTML_REF.captures_iter(main).map(|cap| cap[1].replace("&amp;", "&")).collect();
    links.sort();
    links.dedup();
    for link in links {
        if link.is_empty()
            || link.starts_with("//")
            || link.split_once(':').is_some_and(|(scheme, _)| {
                !scheme.is_empty()
                    && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
        {
            continue; // external (http:, https:, mailto:, ...)
        }
        let (target, fragment) = match link.split_once('#') {
            Some((t, f)) => (t, Some(f)),
            None => (link.as_str(), None),
        };
        let target = target.split('?').next().unwrap_or("");
        let target_path =
            if target.is_empty() { page.clone() } else { normalize(&dir.join(target)) };
        if !target_path.starts_with(normalize(html_root)) || !target_path.is_file() {
            problems.push(format!(
                "{}: broken link {link:?}: no {} in the book",
                chapter.display(),
                if target.is_empty() { chapter.display().to_string() } else { target.to_string() }
            ));
            continue;
        }
        if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
            let target_html = fs::read_to_string(&target_path).unwrap_or_default();
            let id = format!("id=\"{fragment}\"");
            if !target_html.contains(&id) {
                problems.push(format!(
                    "{}: broken link {link:?}: no heading or element with id {fragment:?} in {}",
                    chapter.display(),
                    target_path
                        .strip_prefix(normalize(html_root))
                        .unwrap_or(&target_path)
                        .display()
                ));
            }
        }
    }
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn the_book_builds_with_every_include_link_and_chapter_in_place() {
    let out = tempfile::tempdir().unwrap();
    let problems = check_book(&book_root(), out.path());
    assert!(
        problems.is_empty(),
        "the book has {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
    // The build really produced the book, and the listings really were expanded.
    assert!(out.path().join("index.html").is_file());
    let print = fs::read_to_string(out.path().join("print.html")).unwrap();
    assert!(!print.contains("{{#include"), "an include was left unexpanded");
    assert!(print.contains("fn any_by_type"), "the week 1 loader listings are missing");
}

/// The bootstraps readers copy (every `book/src/**/*.yaml`) and the load
/// benchmark's template pass `mini-envoy --mode validate`: the real loader and
/// its validation (field paths, unsupported fields), then the server's own
/// compilation of clusters, filter chains and routes, so a config the book
/// shows is one mini-envoy accepts.
#[test]
fn the_book_and_benchmark_bootstraps_validate() {
    fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                yaml_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                found.push(path);
            }
        }
    }
    let mut configs = Vec::new();
    yaml_files(&book_root().join("src"), &mut configs);
    assert!(!configs.is_empty(), "the book ships its configs as .yaml files");

    let template = book_root().join("../bench/mini-envoy-bench.yaml.tmpl");
    let rendered = fs::read_to_string(&template)
        .unwrap()
        .replace("{port}", "18103")
        .replace("{upstream_address}", "127.0.0.1")
        .replace("{upstream_port}", "18080");
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("mini-envoy-bench.yaml");
    fs::write(&bench, rendered).unwrap();
    configs.push(bench);

    let binary = mini_envoy_tests::binary::mini_envoy_path();
    for config in configs {
        let output = std::process::Command::new(binary)
            .args(["--mode", "validate", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{} does not validate:\n{}{}",
            config.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Negative tests: a tiny book per broken rule.
mod negative {
    use super::*;

    /// A tiny valid book: two chapters, an image, a Rust file with an anchor.
    struct TinyBook {
        dir: tempfile::TempDir,
    }

    impl TinyBook {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let t = Self { dir };
            t.write("book.toml", "[book]\ntitle = \"tiny\"\n\n[build]\ncreate-missing = false\n");
            t.write("src/SUMMARY.md", "# Summary\n\n- [One](one.md)\n- [Two](part/two.md)\n");
            t.write(
                "src/one.md",
                "# One\n\n## Some heading\n\nSee [two](part/two.md#the-code) and [here](#some-heading).\n\n![diagram](img/d.svg)\n",
            );
            t.write(
                "src/part/two.md",
                "# Two\n\n## The code\n\n```rust\n{{#include ../../code/lib.rs:greet}}\n```\n\nBack to [one](../one.md).\n",
            );
            t.write("src/img/d.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n");
            t.write(
                "code/lib.rs",
                "// ANCHOR: greet\npub fn greet() -> &'static str {\n    \"hi\"\n}\n// ANCHOR_END: greet\n",
            );
            t
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        fn write(&self, rel: &str, text: &str) {
            let p = self.dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }

        fn edit(&self, rel: &str, from: &str, to: &str) {
            let p = self.dir.path().join(rel);
            let text = fs::read_to_string(&p).unwrap();
            assert!(text.contains(from), "{rel} has no {from:?}");
            fs::write(p, text.replace(from, to)).unwrap();
        }

        fn problems(&self) -> Vec<String> {
            let out = tempfile::tempdir().unwrap();
            check_book(self.root(), out.path())
        }

        /// Exactly one problem, containing every one of `needles`.
        fn assert_one_problem(&self, needles: &[&str]) {
            let problems = self.problems();
            assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
            for needle in needles {
                assert!(
                    problems[0].contains(needle),
                    "{:?} does not mention {needle:?}",
                    problems[0]
                );
            }
        }

        /// What mdbook alone says: load and build with the book's own config.
        fn mdbook_alone(&self) -> Result<(), String> {
            let out = tempfile::tempdir().unwrap();
            let mut config = Config::from_disk(self.root().join("book.toml")).unwrap();
            config.build.build_dir = out.path().to_path_buf();
            let book =
                MDBook::load_with_config(self.root(), config).map_err(|e| format!("{e:#}"))?;
            book.build().map_err(|e| format!("{e:#}"))
        }
    }

    #[test]
    fn the_tiny_book_is_clean() {
        let t = TinyBook::new();
        assert_eq!(t.problems(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_include_file_fails() {
        let t = TinyBook::new();
        t.edit("src/part/two.md", "code/lib.rs", "code/gone.rs");
        // mdbook alone only logs this and renders the raw `{{#include}}` text.
        assert_eq!(t.mdbook_alone(), Ok(()));
        t.assert_one_problem(&["part/two.md", "code/gone.rs", "cannot read"]);
    }

    #[test]
    fn a_missing_anchor_fails() {
        let t = TinyBook::new();
        t.edit("src/part/two.md", "lib.rs:greet", "lib.rs:wave");
        // mdbook alone includes nothing and builds.
        assert_eq!(t.mdbook_alone(), Ok(()));
        t.assert_one_problem(&["part/two.md", "no `ANCHOR: wave`"]);
    }

    #[test]
    fn an_anchor_without_its_end_fails() {
        let t = TinyBook::new();
        t.edit("code/lib.rs", "// ANCHOR_END: greet\n", "");
        t.assert_one_problem(&["`ANCHOR: greet` has no `ANCHOR_END: greet`"]);
    }

    #[test]
    fn an_include_by_line_numbers_fails() {
        let t = TinyBook::new();
        t.edit("src/part/two.md", "lib.rs:greet", "lib.rs:2:4");
        t.assert_one_problem(&["selects lines by number"]);
    }

    #[test]
    fn an_escaped_include_is_not_checked() {
        let t = TinyBook::new();
        t.edit(
            "src/one.md",
            "## Some heading\n",
            "## Some heading\n\nWrite `\\{{#include nowhere.rs:x}}`.\n",
        );
        assert_eq!(t.problems(), Vec::<String>::new());
    }

    #[test]
    fn a_link_to_a_missing_chapter_fails() {
        let t = TinyBook::new();
        t.edit("src/part/two.md", "(../one.md)", "(../three.md)");
        assert_eq!(t.mdbook_alone(), Ok(()));
        t.assert_one_problem(&["part/two.md", "broken link", "three.html"]);
    }

    #[test]
    fn a_link_to_a_missing_fragment_in_another_chapter_fails() {
        let t = TinyBook::new();
        t.edit("src/one.md", "two.md#the-code", "two.md#the-cod");
        assert_eq!(t.mdbook_alone(), Ok(()));
        t.assert_one_problem(&["one.md", "\"the-cod\"", "part/two.html"]);
    }

    #[test]
    fn a_link_to_a_missing_fragment_in_the_same_chapter_fails() {
        let t = TinyBook::new();
        t.edit("src/one.md", "(#some-heading)", "(#no-such-heading)");
        t.assert_one_problem(&["one.md", "\"no-such-heading\""]);
    }

    #[test]
    fn a_missing_image_fails() {
        let t = TinyBook::new();
        t.edit("src/one.md", "img/d.svg", "img/gone.svg");
        t.assert_one_problem(&["one.md", "img/gone.svg"]);
    }

    #[test]
    fn external_links_are_not_checked() {
        let t = TinyBook::new();
        t.edit(
            "src/one.md",
            "# One\n",
            "# One\n\n[Envoy](https://www.envoyproxy.io/docs/envoy/latest/#nowhere)\n",
        );
        assert_eq!(t.problems(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_chapter_fails() {
        let t = TinyBook::new();
        fs::remove_file(t.root().join("src/part/two.md")).unwrap();
        // With create-missing = false mdbook itself refuses to load the book.
        let err = t.mdbook_alone().unwrap_err();
        assert!(err.contains("part/two.md"), "{err}");
        let problems = t.problems();
        assert!(
            problems.iter().any(|p| p.contains("SUMMARY.md:4") && p.contains("does not exist")),
            "{problems:#?}"
        );
        assert!(problems.iter().any(|p| p.contains("mdbook cannot load")), "{problems:#?}");
    }

    #[test]
    fn a_missing_chapter_fails_even_if_book_toml_allows_creating_it() {
        let t = TinyBook::new();
        t.write("book.toml", "[book]\ntitle = \"tiny\"\n");
        fs::remove_file(t.root().join("src/part/two.md")).unwrap();
        // mdbook's default would create an empty chapter and build fine.
        assert_eq!(t.mdbook_alone(), Ok(()));
        fs::remove_file(t.root().join("src/part/two.md")).unwrap();
        let problems = t.problems();
        assert!(problems.iter().any(|p| p.contains("does not exist")), "{problems:#?}");
        assert!(!t.root().join("src/part/two.md").exists(), "the check must not create chapters");
    }

    #[test]
    fn a_draft_chapter_fails() {
        let t = TinyBook::new();
        t.edit("src/SUMMARY.md", "- [Two](part/two.md)\n", "- [Two](part/two.md)\n- [Three]()\n");
        t.assert_one_problem(&["SUMMARY.md:5", "\"Three\" is a draft"]);
    }

    #[test]
    fn a_pasted_rust_listing_fails() {
        let t = TinyBook::new();
        t.edit(
            "src/one.md",
            "## Some heading\n",
            "## Some heading\n\n```rust,ignore\nfn pasted() {}\n```\n",
        );
        t.assert_one_problem(&["one.md:6", "pasted code"]);
        // Other languages (YAML configs, shell commands) may be written inline.
        let t = TinyBook::new();
        t.edit(
            "src/one.md",
            "## Some heading\n",
            "## Some heading\n\n```yaml\nkey: value\n```\n\n```sh\ncurl localhost\n```\n",
        );
        assert_eq!(t.problems(), Vec::<String>::new());
    }
}
