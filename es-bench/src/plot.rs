//! `es-bench plot`: draws commands/s by number of clients, ours per store and the peer's, from a
//! results file, as an SVG.
//!
//! ```text
//! cargo run -p es-bench -- plot docs/results/w1.json --out docs/w1.svg
//! ```
//!
//! The results file is one JSON object (unknown keys are refused, so a misspelt key is an
//! error rather than a silently missing series):
//!
//! ```text
//! {
//!   "title": "W1 spread: commands/s by concurrent clients",
//!   "note": "2 vCPU VM, ...\nsecond line",
//!   "series": [
//!     { "name": "es, LMDB (durable)",
//!       "source": "es-bench all --runs 3, 2026-11-27, 189ad16",
//!       "points": [ { "clients": 64, "commands_per_s": 31012 },
//!                   { "clients": 1024, "commands_per_s": 69538 } ] },
//!     { "name": "cqrs-es (peer)", "peer": true,
//!       "points": [ { "clients": 64, "commands_per_s": 5000 } ] }
//!   ]
//! }
//! ```
//!
//! - `title` (required): drawn above the chart;
//! - `note` (optional): drawn below it, one line per `\n` (the machine, the dates);
//! - `series` (required): each with `name` (the legend's label), `points` (each `clients` and
//!   `commands_per_s`), `peer` (optional, default `false`: a peer's figures are drawn as red
//!   triangles without a line) and `source` (optional: where the figures come from, printed on
//!   stderr when plotting, not drawn).
//!
//! Both axes are logarithmic (clients in powers of two, commands/s in powers of ten), so every
//! `clients` must be at least 1 and every `commands_per_s` above 0; there must be at least one
//! series and each needs at least one point. Each point is labelled with its figure. Text is
//! written as SVG `<text>` elements whose size plotters estimates without loading a font, so no
//! system font is needed to render the file, and any viewer draws it in its own sans-serif.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

/// The width and height of the SVG, in pixels.
const SIZE: (u32, u32) = (900, 560);

/// The height of one line of the note under the chart, in pixels.
const NOTE_LINE: u32 = 17;

/// Our series' colours, in the order of the file; a peer series is drawn in [`PEER`].
const OURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// The colour of the peer's series.
const PEER: RGBColor = RGBColor(214, 39, 40);

/// `es-bench plot`: draws a results file as an SVG.
#[derive(Debug, Parser)]
#[command(
    name = "es-bench plot",
    bin_name = "es-bench plot",
    about = "Draws commands/s by clients from a results JSON file as an SVG (format: es-bench/src/plot.rs)"
)]
struct PlotCli {
    /// The results file (JSON).
    input: PathBuf,
    /// Where to write the SVG.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// A results file: the figures to draw.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    /// Drawn above the chart.
    pub title: String,
    /// Drawn below the chart (the machine, the dates), one line per `\n`.
    #[serde(default)]
    pub note: Option<String>,
    /// One line (or, for a peer, one set of markers) per series.
    pub series: Vec<Series>,
}

/// One store's (or the peer's) figures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// The legend's label.
    pub name: String,
    /// The peer's figures: drawn as triangles without a line, in the peer's colour.
    #[serde(default)]
    pub peer: bool,
    /// Where the figures come from (date, commit, command): not drawn, printed on stderr.
    #[serde(default)]
    pub source: Option<String>,
    /// The measured figures.
    pub points: Vec<Point>,
}

/// One measured figure.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    /// Concurrent clients.
    pub clients: u32,
    /// Commands per second.
    pub commands_per_s: f64,
}

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The results file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The results file is not a results object (serde's message gives the line and column).
    #[error(
        "{path} is not a results file: {source} (the format is described in es-bench/src/plot.rs)"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The results parse but cannot be drawn.
    #[error("{0}")]
    Invalid(String),
    /// plotters failed while drawing.
    #[error("drawing the chart: {0}")]
    Draw(String),
    /// The SVG could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `es-bench plot ARGS` (`args` starts with `plot`, which stands for the program's name).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = PlotCli::parse_from(args);
    match plot_file(&cli.input, &cli.out) {
        Ok(results) => {
            eprintln!("es-bench plot: wrote {}", cli.out.display());
            for series in &results.series {
                let source = series.source.as_deref().unwrap_or("no source given");
                eprintln!("  {}: {source}", series.name);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("es-bench plot: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Reads `input`, draws it and writes the SVG to `out`; returns the results drawn.
pub fn plot_file(input: &Path, out: &Path) -> Result<Results, PlotError> {
    let text = std::fs::read_to_string(input).map_err(|source| PlotError::Read {
        path: input.to_owned(),
        source,
    })?;
    let results = parse(&text).map_err(|source| PlotError::Parse {
        path: input.to_owned(),
        source,
    })?;
    let svg = render(&results)?;
    std::fs::write(out, svg).map_err(|source| PlotError::Write {
        path: out.to_owned(),
        source,
    })?;
    Ok(results)
}

/// Parses a results file's text.
pub fn parse(text: &str) -> Result<Results, serde_json::Error> {
    serde_json::from_str(text)
}

/// Checks what the log axes need: at least one series, points in each, positive figures.
fn validate(results: &Results) -> Result<(), PlotError> {
    if results.series.is_empty() {
        return Err(PlotError::Invalid(
            "the results have no series: add at least one to \"series\"".to_owned(),
        ));
    }
    for series in &results.series {
        if series.points.is_empty() {
            return Err(PlotError::Invalid(format!(
                "the series {:?} has no points: add at least one to its \"points\"",
                series.name
            )));
        }
        for point in &series.points {
            if point.clients == 0 {
                return Err(PlotError::Invalid(format!(
                    "the series {:?} has a point with 0 clients: the clients axis is \
                     logarithmic, so clients start at 1",
                    series.name
                )));
            }
            if !(point.commands_per_s.is_finite() && point.commands_per_s > 0.0) {
                return Err(PlotError::Invalid(format!(
                    "the series {:?} has commands_per_s = {} at {} clients: the axis is \
                     logarithmic, so figures must be above 0",
                    series.name, point.commands_per_s, point.clients
                )));
            }
        }
    }
    Ok(())
}

/// Draws the results as an SVG document.
pub fn render(results: &Results) -> Result<String, PlotError> {
    validate(results)?;
    let points = || results.series.iter().flat_map(|s| s.points.iter());
    let min_clients = points().map(|p| p.clients).min().unwrap_or(1);
    let max_clients = points().map(|p| p.clients).max().unwrap_or(1);
    let min_rate = points()
        .map(|p| p.commands_per_s)
        .fold(f64::INFINITY, f64::min);
    let max_rate = points().map(|p| p.commands_per_s).fold(0.0, f64::max);
    // One octave of room on either side; powers of ten around the figures, with room above
    // the highest one for its label.
    let x_range = f64::from(min_clients) / 2.0..f64::from(max_clients) * 2.0;
    let y_low = 10f64.powf(min_rate.log10().floor());
    let mut y_high = 10f64.powf(max_rate.log10().ceil());
    if max_rate * 1.5 > y_high {
        y_high *= 2.0;
    }

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, results, min_clients, x_range, y_low..y_high)
            .map_err(|e| PlotError::Draw(e.to_string()))?;
        root.present().map_err(|e| PlotError::Draw(e.to_string()))?;
    }
    Ok(svg)
}

/// The drawing itself, on a fresh area.
fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    results: &Results,
    min_clients: u32,
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
) -> Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>> {
    root.fill(&WHITE)?;
    let note: Vec<&str> = results
        .note
        .as_deref()
        .map_or(Vec::new(), |n| n.lines().collect());
    let footer_height = if note.is_empty() {
        0
    } else {
        8 + NOTE_LINE * note.len() as u32
    };
    let (area, footer) = root.split_vertically(SIZE.1.saturating_sub(footer_height));
    for (i, line) in note.iter().enumerate() {
        footer.draw(&Text::new(
            (*line).to_owned(),
            (12, NOTE_LINE as i32 * i as i32),
            ("sans-serif", 14).into_font().color(&RGBColor(90, 90, 90)),
        ))?;
    }

    // With the clients axis in powers of two from half the fewest clients to twice the most,
    // one label per octave.
    let octaves = (x_range.end / x_range.start).log2().round().max(1.0) as usize;
    let mut chart = ChartBuilder::on(&area)
        .caption(&results.title, ("sans-serif", 24))
        .margin(12)
        .margin_right(30)
        .x_label_area_size(42)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.log_scale().base(2.0), y_range.log_scale())?;
    chart
        .configure_mesh()
        .x_labels(octaves)
        .y_labels(8)
        .x_desc("concurrent clients")
        .y_desc("commands/s")
        .x_label_formatter(&|x| format!("{}", x.round()))
        .y_label_formatter(&|y| short(*y))
        .x_max_light_lines(0)
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;

    let mut ours = OURS.iter().cycle();
    for series in &results.series {
        let colour = if series.peer {
            PEER
        } else {
            ours.next().copied().unwrap_or(BLACK)
        };
        let figures: Vec<(f64, f64)> = series
            .points
            .iter()
            .map(|p| (f64::from(p.clients), p.commands_per_s))
            .collect();
        let style = colour.stroke_width(2);
        if series.peer {
            chart
                .draw_series(
                    figures
                        .iter()
                        .map(|&xy| TriangleMarker::new(xy, 8, colour.filled())),
                )?
                .label(series.name.as_str())
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, colour.filled()));
        } else {
            chart
                .draw_series(LineSeries::new(figures.iter().copied(), style))?
                .label(series.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(
                figures
                    .iter()
                    .map(|&xy| Circle::new(xy, 4, colour.filled())),
            )?;
        }
        // Each figure beside its marker, vertically centred on it: to the left at the fewest
        // clients (the lines leave to the right), to the right elsewhere.
        let font = ("sans-serif", 14).into_font().color(&colour);
        let left = font.pos(Pos::new(HPos::Right, VPos::Center));
        let right = font.pos(Pos::new(HPos::Left, VPos::Center));
        let first = f64::from(min_clients);
        chart.draw_series(figures.iter().map(|&(x, y)| {
            let (offset, style) = if x <= first {
                (-9, left.clone())
            } else {
                (9, right.clone())
            };
            EmptyElement::at((x, y)) + Text::new(short(y), (offset, 0), style)
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .margin(10)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()?;
    Ok(())
}

/// A figure in a few characters: 928,563 is `929k`, 1,500,000 is `1.5M`, 5,000 is `5k`.
fn short(value: f64) -> String {
    let (scaled, unit) = if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    if scaled >= 100.0 || (scaled - scaled.round()).abs() < 0.05 {
        format!("{}{unit}", scaled.round())
    } else {
        format!("{scaled:.1}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"{
        "title": "W1 spread",
        "note": "a test machine",
        "series": [
            { "name": "es, memory & more", "source": "a test",
              "points": [ { "clients": 64, "commands_per_s": 928563 },
                          { "clients": 1024, "commands_per_s": 741906 } ] },
            { "name": "peer", "peer": true,
              "points": [ { "clients": 64, "commands_per_s": 5000 } ] }
        ]
    }"#;

    #[test]
    fn renders_every_series_with_its_figures() {
        let results = parse(SMALL).expect("the test file parses");
        let svg = render(&results).expect("the test file renders");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "W1 spread",
            "a test machine",
            "es, memory &amp; more",
            "peer",
            "929k",
            "742k",
            "5k",
            "concurrent clients",
            "commands/s",
        ] {
            assert!(svg.contains(text), "{text:?} is not in the SVG");
        }
        // The peer is drawn as markers, ours as a line.
        assert!(svg.contains("<polygon"), "the peer's triangles are missing");
        assert!(svg.contains("<polyline"), "our line is missing");
    }

    #[test]
    fn a_malformed_file_says_where_and_what() {
        let missing = r#"{ "title": "t", "series": [ { "name": "a" } ] }"#;
        let e = parse(missing).expect_err("points are required").to_string();
        assert!(e.contains("missing field `points`"), "{e}");
        assert!(e.contains("line 1"), "{e}");

        let misspelt = r#"{ "title": "t", "series": [ { "name": "a", "points": [ { "client": 4, "commands_per_s": 1 } ] } ] }"#;
        let e = parse(misspelt)
            .expect_err("unknown keys are refused")
            .to_string();
        assert!(e.contains("unknown field `client`"), "{e}");

        assert!(parse("[1, 2]").is_err());
    }

    #[test]
    fn figures_a_log_axis_cannot_draw_are_refused() {
        let zero = r#"{ "title": "t", "series": [ { "name": "a", "points": [ { "clients": 64, "commands_per_s": 0 } ] } ] }"#;
        let e = render(&parse(zero).expect("parses"))
            .expect_err("0/s is refused")
            .to_string();
        assert!(e.contains("must be above 0"), "{e}");

        let empty = r#"{ "title": "t", "series": [ { "name": "a", "points": [] } ] }"#;
        let e = render(&parse(empty).expect("parses"))
            .expect_err("no points")
            .to_string();
        assert!(e.contains("has no points"), "{e}");

        let none = r#"{ "title": "t", "series": [] }"#;
        assert!(render(&parse(none).expect("parses")).is_err());
    }

    #[test]
    fn plot_file_names_the_file_it_cannot_read() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let missing = dir.path().join("missing.json");
        let e = plot_file(&missing, &dir.path().join("out.svg")).expect_err("no file");
        assert!(e.to_string().contains("missing.json"), "{e}");

        let input = dir.path().join("w1.json");
        std::fs::write(&input, SMALL).expect("write the input");
        let out = dir.path().join("w1.svg");
        plot_file(&input, &out).expect("plots");
        let svg = std::fs::read_to_string(&out).expect("the SVG was written");
        assert!(svg.contains("es, memory &amp; more"));
    }

    #[test]
    fn short_figures() {
        assert_eq!(short(928_563.0), "929k");
        assert_eq!(short(5_000.0), "5k");
        assert_eq!(short(21_892.0), "21.9k");
        assert_eq!(short(1_500_000.0), "1.5M");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(450.0), "450");
    }
}
