//! A small flow layout for report pages: headings, wrapped paragraphs, key/value blocks and
//! tables whose header repeats on every page they run onto. It lays text out with the embedded
//! fonts' own advances and produces draw operations per page; [`super::render`] turns them into
//! PDF. Nothing here knows what a custody report says.

use ttf_parser::Face;

/// A4, in points.
pub const PAGE_WIDTH: f32 = 595.28;
/// A4, in points.
pub const PAGE_HEIGHT: f32 = 841.89;
/// Left and right margin.
pub const MARGIN_X: f32 = 50.0;
/// Where the body starts.
pub const TOP: f32 = 70.0;
/// Where the body ends.
pub const BOTTOM: f32 = PAGE_HEIGHT - 60.0;
/// Body width.
pub const WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;

/// Which of the embedded fonts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Libertinus Serif Regular.
    Serif,
    /// Libertinus Serif Bold.
    Bold,
    /// DejaVu Sans Mono (hashes, ids, commands).
    Mono,
}

/// The embedded fonts, found by PostScript name among the bundled ones.
pub struct Fonts {
    faces: [(&'static [u8], Face<'static>); 3],
}

const NAMES: [&str; 3] = [
    "LibertinusSerif-Regular",
    "LibertinusSerif-Bold",
    "DejaVuSansMono",
];

impl Fonts {
    /// Load the three fonts; `None` if the bundle lacks one (a build problem).
    pub fn load() -> Option<Fonts> {
        let find = |name: &str| {
            typst_assets::fonts().find_map(|data| {
                let face = Face::parse(data, 0).ok()?;
                // A name table holds each name once per platform; only the Unicode ones decode.
                let named = face.names().into_iter().any(|n| {
                    n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME
                        && n.to_string().as_deref() == Some(name)
                });
                named.then_some((data, face))
            })
        };
        Some(Fonts {
            faces: [find(NAMES[0])?, find(NAMES[1])?, find(NAMES[2])?],
        })
    }

    fn face(&self, style: Style) -> &(&'static [u8], Face<'static>) {
        match style {
            Style::Serif => &self.faces[0],
            Style::Bold => &self.faces[1],
            Style::Mono => &self.faces[2],
        }
    }

    /// The font file of a style.
    pub fn data(&self, style: Style) -> &'static [u8] {
        self.face(style).0
    }

    /// `text` with every character the font has no glyph for (and every control character)
    /// replaced by `?`: PDF/A forbids drawing the missing-glyph box.
    pub fn printable(&self, style: Style, text: &str) -> String {
        let face = &self.face(style).1;
        text.chars()
            .map(|c| {
                if !c.is_control() && face.glyph_index(c).is_some_and(|g| g.0 != 0) {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    }

    /// Width of `text` at `size`.
    pub fn width(&self, style: Style, size: f32, text: &str) -> f32 {
        text.chars().map(|c| self.char_width(style, size, c)).sum()
    }

    /// `text` broken into lines no wider than `width`: at spaces, and inside a word only when
    /// the word alone is wider (long ids and ARNs, after a `/`, `:` or `-` where one fits).
    /// Linear in the text's length; a text longer than [`MAX_TEXT`] characters is cut there
    /// with a note (the attached files hold it whole).
    pub fn wrap(&self, style: Style, size: f32, width: f32, text: &str) -> Vec<String> {
        let text = clipped(text);
        let space = self.width(style, size, " ");
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            let mut line_width = 0.0;
            for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
                let word_width = self.width(style, size, word);
                let gap = if line.is_empty() { 0.0 } else { space };
                if line_width + gap + word_width <= width {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(word);
                    line_width += gap + word_width;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                if word_width <= width {
                    line = word.to_string();
                    line_width = word_width;
                    continue;
                }
                // Too wide alone: cut it, preferring the last `/`, `:`, `-` or `_` that fits.
                let mut piece = String::new();
                let mut piece_width = 0.0;
                let mut soft: Option<(usize, f32)> = None;
                for c in word.chars() {
                    let w = self.char_width(style, size, c);
                    if piece_width + w > width && !piece.is_empty() {
                        let (at, at_width) = soft.unwrap_or((piece.len(), piece_width));
                        let rest = piece.split_off(at);
                        lines.push(std::mem::replace(&mut piece, rest));
                        piece_width -= at_width;
                        soft = None;
                    }
                    piece.push(c);
                    piece_width += w;
                    if matches!(c, '/' | ':' | '-' | '_') {
                        soft = Some((piece.len(), piece_width));
                    }
                }
                line = piece;
                line_width = piece_width;
            }
            lines.push(line);
        }
        lines
    }

    fn char_width(&self, style: Style, size: f32, c: char) -> f32 {
        let face = &self.face(style).1;
        let em = f32::from(face.units_per_em());
        face.glyph_index(c)
            .and_then(|g| face.glyph_hor_advance(g))
            .map_or(em / 2.0, f32::from)
            * size
            / em
    }
}

/// The longest text drawn in one place; custody events are bounded by forensnap, but a crafted
/// case folder may hold anything.
pub const MAX_TEXT: usize = 4_000;

fn clipped(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_TEXT) {
        None => std::borrow::Cow::Borrowed(text),
        Some((at, _)) => std::borrow::Cow::Owned(format!(
            "{} [... {} more characters: see the attached files]",
            &text[..at],
            text[at..].chars().count()
        )),
    }
}

/// One drawing operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Text with its baseline at `y`.
    Text {
        /// Left.
        x: f32,
        /// Baseline.
        y: f32,
        /// Font.
        style: Style,
        /// Size.
        size: f32,
        /// Grey level (0 black).
        grey: u8,
        /// The text.
        text: String,
    },
    /// A filled rectangle.
    Rect {
        /// Left.
        x: f32,
        /// Top.
        y: f32,
        /// Width.
        w: f32,
        /// Height.
        h: f32,
        /// Grey level.
        grey: u8,
    },
    /// A line.
    Line {
        /// Start.
        x1: f32,
        /// Start.
        y1: f32,
        /// End.
        x2: f32,
        /// End.
        y2: f32,
        /// Width.
        width: f32,
        /// Grey level.
        grey: u8,
    },
}

/// A table column.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    /// Header text.
    pub title: &'a str,
    /// Share of the body width.
    pub share: f32,
    /// Font of its cells.
    pub style: Style,
}

/// A table row: its cells, and optional full-width lines under them (hashes that must stay on
/// one line each).
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// One text per column.
    pub cells: Vec<String>,
    /// Lines under the cells, across the whole width, in the mono font.
    pub under: Vec<String>,
}

/// Body text size.
pub const BODY: f32 = 9.5;
/// Table text size.
pub const SMALL: f32 = 7.8;
/// Hash text size (64 hex digits fit a half-page column).
pub const MONO: f32 = 7.0;

/// The pages being laid out.
pub struct Flow<'f> {
    fonts: &'f Fonts,
    /// Finished and current pages.
    pub pages: Vec<Vec<Op>>,
    y: f32,
}

impl<'f> Flow<'f> {
    /// An empty document with one page started.
    pub fn new(fonts: &'f Fonts) -> Flow<'f> {
        Flow {
            fonts,
            pages: vec![Vec::new()],
            y: TOP,
        }
    }

    fn page(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("a flow always has a page")
    }

    /// A full-width shaded band from `top`, `height` tall (banners, table headers, rows).
    fn shade(&mut self, top: f32, height: f32, grey: u8) {
        self.page().push(Op::Rect {
            x: MARGIN_X,
            y: top,
            w: WIDTH,
            h: height,
            grey,
        });
    }

    /// Start a new page.
    pub fn page_break(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Make room for `height`, starting a new page if it does not fit.
    pub fn need(&mut self, height: f32) {
        if self.y + height > BOTTOM && self.y > TOP {
            self.page_break();
        }
    }

    /// Vertical space.
    pub fn space(&mut self, height: f32) {
        self.y += height;
    }

    /// Lines of text at `x`, `width` wide; returns nothing, moves down.
    pub fn text(&mut self, style: Style, size: f32, grey: u8, text: &str) {
        self.text_at(MARGIN_X, WIDTH, style, size, grey, text);
    }

    fn text_at(&mut self, x: f32, width: f32, style: Style, size: f32, grey: u8, text: &str) {
        let leading = size * 1.3;
        for line in self.fonts.wrap(style, size, width, text) {
            self.need(leading);
            self.y += leading;
            let y = self.y - size * 0.3;
            self.page().push(Op::Text {
                x,
                y,
                style,
                size,
                grey,
                text: line,
            });
        }
    }

    /// A section heading (kept with at least a few lines of what follows).
    pub fn heading(&mut self, text: &str) {
        self.need(80.0);
        self.space(10.0);
        self.text(Style::Bold, 14.0, 0, text);
        let y = self.y + 3.0;
        self.page().push(Op::Line {
            x1: MARGIN_X,
            y1: y,
            x2: MARGIN_X + WIDTH,
            y2: y,
            width: 0.6,
            grey: 120,
        });
        self.space(8.0);
    }

    /// A sub-heading.
    pub fn subheading(&mut self, text: &str) {
        self.need(50.0);
        self.space(6.0);
        self.text(Style::Bold, 10.5, 0, text);
        self.space(2.0);
    }

    /// A paragraph of body text.
    pub fn para(&mut self, text: &str) {
        self.text(Style::Serif, BODY, 0, text);
        self.space(4.0);
    }

    /// A banner: a shaded box holding bold text (the verification result).
    pub fn banner(&mut self, text: &str, grey: u8) {
        let lines = self.fonts.wrap(Style::Bold, 12.0, WIDTH - 16.0, text);
        let height = lines.len() as f32 * 15.6 + 12.0;
        self.need(height);
        let top = self.y;
        self.shade(top, height, grey);
        self.y += 6.0;
        let text_grey = if grey < 128 { 255 } else { 0 };
        self.text_at(
            MARGIN_X + 8.0,
            WIDTH - 16.0,
            Style::Bold,
            12.0,
            text_grey,
            text,
        );
        self.y = top + height + 6.0;
    }

    /// Label/value lines: the label in bold on the left, the value wrapped on the right.
    pub fn pairs(&mut self, pairs: &[(&str, String, Style)]) {
        let label_width = 130.0;
        for (label, value, style) in pairs {
            let size = if *style == Style::Mono {
                MONO
            } else {
                SMALL + 0.7
            };
            let lines = self
                .fonts
                .wrap(*style, size, WIDTH - label_width, value.as_str());
            let leading = (SMALL + 0.7) * 1.35;
            let count = lines.len().max(1);
            self.need(leading * count as f32);
            let y = self.y + leading - 3.0;
            self.page().push(Op::Text {
                x: MARGIN_X,
                y,
                style: Style::Bold,
                size: SMALL + 0.7,
                grey: 60,
                text: (*label).to_string(),
            });
            for (i, line) in lines.into_iter().enumerate() {
                let y = self.y + leading * (i as f32 + 1.0) - 3.0;
                self.page().push(Op::Text {
                    x: MARGIN_X + label_width,
                    y,
                    style: *style,
                    size,
                    grey: 0,
                    text: line,
                });
            }
            self.y += leading * count as f32;
        }
        self.space(4.0);
    }

    fn header_row(&mut self, columns: &[Column<'_>]) {
        let height = SMALL * 1.35 + 4.0;
        let top = self.y;
        self.shade(top, height, 225);
        let mut x = MARGIN_X;
        for column in columns {
            self.page().push(Op::Text {
                x: x + 2.0,
                y: top + height - 4.0,
                style: Style::Bold,
                size: SMALL,
                grey: 0,
                text: column.title.to_string(),
            });
            x += column.share * WIDTH;
        }
        self.y = top + height + 1.0;
    }

    /// A table; its header is drawn again on every page it continues on. A row never splits.
    pub fn table(&mut self, columns: &[Column<'_>], rows: &[Row]) {
        let leading = SMALL * 1.3;
        let wrap_row = |row: &Row| -> (Vec<Vec<String>>, usize, f32) {
            let wrapped: Vec<Vec<String>> = columns
                .iter()
                .zip(&row.cells)
                .map(|(c, text)| {
                    let size = if c.style == Style::Mono { MONO } else { SMALL };
                    self.fonts.wrap(c.style, size, c.share * WIDTH - 4.0, text)
                })
                .collect();
            let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
            let height = (lines + row.under.len()) as f32 * leading + 3.0;
            (wrapped, lines, height)
        };
        // The header never ends a page alone: it goes with the first row.
        let first = rows.first().map_or(leading, |row| wrap_row(row).2);
        self.need(SMALL * 1.35 + 5.0 + first);
        self.header_row(columns);
        for (n, row) in rows.iter().enumerate() {
            let (wrapped, lines, height) = wrap_row(row);
            if self.y + height > BOTTOM {
                self.page_break();
                self.header_row(columns);
            }
            let top = self.y;
            if n % 2 == 1 {
                self.shade(top, height, 244);
            }
            let mut x = MARGIN_X;
            for (column, cell) in columns.iter().zip(wrapped) {
                let size = if column.style == Style::Mono {
                    MONO
                } else {
                    SMALL
                };
                for (i, line) in cell.into_iter().enumerate() {
                    self.page().push(Op::Text {
                        x: x + 2.0,
                        y: top + leading * (i as f32 + 1.0) - 1.0,
                        style: column.style,
                        size,
                        grey: 0,
                        text: line,
                    });
                }
                x += column.share * WIDTH;
            }
            for (i, line) in row.under.iter().enumerate() {
                self.page().push(Op::Text {
                    x: MARGIN_X + 2.0,
                    y: top + leading * ((lines + i) as f32 + 1.0) - 1.0,
                    style: Style::Mono,
                    size: MONO,
                    grey: 50,
                    text: line.clone(),
                });
            }
            self.y = top + height;
        }
        self.space(8.0);
    }

    /// Raw drawing in a box `height` tall at the current position (the timeline picture):
    /// `draw` gets the box's top and pushes operations.
    pub fn picture(&mut self, height: f32, draw: impl FnOnce(f32, &mut Vec<Op>)) {
        self.need(height);
        let top = self.y;
        draw(top, self.page());
        self.y = top + height;
    }

    /// Fonts, for measuring.
    pub fn fonts(&self) -> &'f Fonts {
        self.fonts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_words_break_where_they_must_and_hashes_fit_half_a_page() {
        let fonts = Fonts::load().expect("bundled fonts");
        let hash = "0123456789abcdef".repeat(4);
        assert!(fonts.width(Style::Mono, MONO, &hash) < WIDTH * 0.6);
        let arn =
            "arn:aws:sts::111111111111:assumed-role/ForensnapCollector/forensnap-IR-2026-0042";
        let lines = fonts.wrap(Style::Serif, SMALL, 90.0, arn);
        assert!(lines.len() > 1, "{lines:?}");
        assert_eq!(lines.concat(), arn, "nothing lost or added");
        assert!(
            lines[..lines.len() - 1]
                .iter()
                .all(|l| l.ends_with(['/', ':', '-', '_'])
                    || fonts.width(Style::Serif, SMALL, l) <= 90.0)
        );
        assert_eq!(
            fonts.wrap(Style::Serif, BODY, WIDTH, "two words"),
            vec!["two words"]
        );
        assert_eq!(fonts.wrap(Style::Serif, BODY, WIDTH, ""), vec![""]);
        // A crafted megabyte is cut, in linear time, and says so.
        let huge = "x".repeat(1 << 20);
        let lines = fonts.wrap(Style::Mono, MONO, WIDTH, &huge);
        assert!(lines.len() < 100, "{} lines", lines.len());
        assert!(lines.concat().contains("more characters"));
    }
}
