//! The library's table, drawn row by row: a header of resizable columns over a
//! virtualised body in which each row is one clickable widget and its cells are laid-out
//! texts painted into clipped rectangles.
//!
//! egui_extras' table makes a child `Ui` and a response for every cell, and the cell's
//! label is a widget of its own: at nine columns and forty visible rows, about 720 widgets
//! a frame. Profiled while scrolling 5000 rows, that bookkeeping was about half of a
//! library frame's UI time. Here a row is one widget. Its cells get a widget of their own
//! only when something needs one: a tooltip under the pointer, or accessibility (a screen
//! reader, the tests), which reads each cell as a labelled node.
//!
//! It looks as egui_extras' striped, clipping table did (the same row pitch, stripes,
//! selection and hover fills, texts cut with "…") and its column lines are dragged to
//! resize (widths remembered across runs; no auto-size on double-click). Unlike it, the
//! columns fit the window: where they add up to more, the others give way. Rows take
//! clicks but not keyboard focus: egui remembers every focusable widget's id until
//! arrow-key focus moves (one per row ever shown), and a focused row would take the arrow
//! keys, space and Ctrl+A from the app, which moves the selection itself.

use std::sync::Arc;

use eframe::egui::{
    self, Align, Galley, Id, Layout, Rect, Response, Role, Sense, Ui, UiBuilder, WidgetInfo, pos2,
    vec2,
};
use eframe::emath::GuiRounding as _;

/// A column: its first width as a share of the table's width, and its narrowest. The last
/// column takes what the others leave.
#[derive(Clone, Copy, Debug)]
pub struct GridColumn {
    pub share: f32,
    pub min: f32,
}

/// The table: its columns, row height and the row to bring into view this frame.
pub struct Grid<'c> {
    id: Id,
    columns: &'c [GridColumn],
    header_height: f32,
    row_height: f32,
    scroll_to: Option<usize>,
}

/// One visible row, handed to the caller to fill.
pub struct GridRow<'a> {
    /// Position in display order.
    pub index: usize,
    /// The row's widget (clicks, double clicks, hover).
    pub response: Response,
    /// Whether the row is drawn selected (its plain texts take the selection's colour).
    pub selected: bool,
    /// Cells' left edges and widths.
    cells: &'a [(f32, f32)],
    rect: Rect,
    /// Cells need their own widgets: accessibility is on.
    a11y: bool,
}

impl<'c> Grid<'c> {
    pub fn new(id: Id, columns: &'c [GridColumn], header_height: f32, row_height: f32) -> Self {
        Self {
            id,
            columns,
            header_height,
            row_height,
            scroll_to: None,
        }
    }

    /// Bring row `index` (display order) into view, scrolling as little as possible.
    pub fn scroll_to(mut self, index: Option<usize>) -> Self {
        self.scroll_to = index;
        self
    }

    /// Column widths: remembered ones (the user's resizing; `None` when there are none
    /// yet), else shares of `width`.
    fn remembered(&self, ui: &Ui, width: f32) -> (Vec<f32>, bool) {
        let n = self.columns.len();
        match ui.data_mut(|d| d.get_persisted::<Vec<f32>>(self.id)) {
            Some(w) if w.len() == n => (w, true),
            _ => (
                (self.columns.iter())
                    .map(|c| (width * c.share).max(c.min))
                    .collect(),
                false,
            ),
        }
    }

    /// Fit `widths` into `width`: the last column takes the rest; where they add up to
    /// more (a narrower window, a widened column), the others, except `held` (the column
    /// being dragged), give way down to their narrowest in proportion to what each can
    /// give, so that every column stays in view; past that, the dragged column stops.
    fn fit(&self, ui: &Ui, widths: &mut [f32], width: f32, held: Option<usize>) {
        let n = self.columns.len();
        let spacing = ui.spacing().item_spacing.x;
        let Some(last) = self.columns.last() else {
            return;
        };
        let others = |widths: &[f32]| -> f32 { widths[..n - 1].iter().map(|w| w + spacing).sum() };
        let over = others(widths) + last.min - width;
        let giving = |c: usize| c + 1 < n && Some(c) != held;
        let slack: f32 = (widths.iter().zip(self.columns).enumerate())
            .filter(|(c, _)| giving(*c))
            .map(|(_, (w, col))| w - col.min)
            .sum();
        if over > 0.0 && slack > 0.0 {
            let give = (over / slack).min(1.0);
            for (c, (w, col)) in widths.iter_mut().zip(self.columns).enumerate() {
                if giving(c) {
                    *w -= (*w - col.min) * give;
                }
            }
        }
        // The others at their narrowest: the dragged column stops where the window ends.
        if let Some(h) = held.filter(|_| over > slack) {
            widths[h] = (widths[h] - (over - slack.max(0.0))).max(self.columns[h].min);
        }
        widths[n - 1] = (width - others(widths) - 0.1).max(last.min);
    }

    /// Draw the table with `rows` rows into the rest of `ui`: `header(ui, column)` fills
    /// each header cell, `selected(index)` says whether a row is selected, and
    /// `row(ui, row)` paints a visible row's cells.
    pub fn show(
        self,
        ui: &mut Ui,
        rows: usize,
        mut header: impl FnMut(&mut Ui, usize),
        mut selected: impl FnMut(usize) -> bool,
        mut row: impl FnMut(&mut Ui, &GridRow<'_>),
    ) {
        let spacing = ui.spacing().item_spacing;
        let top = ui.cursor().top();
        let left = ui.cursor().left();
        let width = ui.available_width();
        let (mut widths, remembered) = self.remembered(ui, width);
        let resize_id = |c: usize| self.id.with(("resize", c));
        let held = (0..widths.len()).find(|&c| ui.ctx().is_being_dragged(resize_id(c)));
        self.fit(ui, &mut widths, width, held);
        let mut cells = Vec::with_capacity(widths.len());
        let mut x = left;
        for w in &widths {
            cells.push((x, *w));
            x += w + spacing.x;
        }
        let right = x - spacing.x;

        // Header (columns wider than the view are cut at its edge, not widening it).
        let (header_rect, _) = ui.allocate_exact_size(
            vec2((right - left).min(ui.available_width()), self.header_height),
            Sense::hover(),
        );
        for (c, &(x0, w)) in cells.iter().enumerate() {
            let rect = Rect::from_x_y_ranges(x0..=x0 + w, header_rect.y_range());
            let mut cell = ui.new_child(
                UiBuilder::new()
                    .id_salt(("header", c))
                    .max_rect(rect)
                    .layout(Layout::left_to_right(Align::Center)),
            );
            cell.shrink_clip_rect(rect);
            cell.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
            header(&mut cell, c);
        }

        // Body.
        let pitch = self.row_height + spacing.y;
        let stripe = ui.visuals().faint_bg_color;
        let selection = ui.visuals().selection.bg_fill;
        let hover = ui.visuals().widgets.hovered.bg_fill;
        egui::ScrollArea::vertical()
            .id_salt(self.id.with("body"))
            .auto_shrink([false, false])
            .show_viewport(ui, |ui, viewport| {
                let origin = ui.max_rect().top();
                ui.set_min_height((rows as f32 * pitch - spacing.y).max(0.0));
                if let Some(r) = self.scroll_to.filter(|_| rows > 0) {
                    let y = origin + r.min(rows - 1) as f32 * pitch;
                    ui.scroll_to_rect(Rect::from_x_y_ranges(left..=left, y..=y + pitch), None);
                }
                let first = ((viewport.min.y / pitch).floor().max(0.0) as usize).min(rows);
                let last = (((viewport.max.y / pitch).ceil() as usize) + 1).min(rows);
                // Whether AccessKit is on (a screen reader, the tests): asked of a row,
                // which has a node then anyway.
                let mut a11y = None;
                for index in first..last {
                    let y = origin + index as f32 * pitch;
                    let rect = Rect::from_x_y_ranges(left..=right, y..=y + self.row_height);
                    let response = ui.interact(rect, self.id.with(("row", index)), Sense::CLICK);
                    let a11y = *a11y.get_or_insert_with(|| {
                        ui.ctx()
                            .accesskit_node_builder(response.id, |_| ())
                            .is_some()
                    });
                    let is_selected = selected(index);
                    // The fills close the gaps between rows and cells, as egui_extras' do.
                    let fill = rect.expand2(0.5 * spacing).round_ui();
                    if index.is_multiple_of(2) {
                        ui.painter().rect_filled(fill, 0.0, stripe);
                    }
                    if is_selected {
                        ui.painter().rect_filled(fill, 0.0, selection);
                    } else if response.hovered() {
                        ui.painter().rect_filled(fill, 0.0, hover);
                    }
                    row(
                        ui,
                        &GridRow {
                            index,
                            response,
                            selected: is_selected,
                            cells: &cells,
                            rect,
                            a11y,
                        },
                    );
                }
            });

        // Column lines, dragged to resize (over the rows, as egui_extras' are).
        let bottom = ui.min_rect().bottom();
        let grab = ui.style().interaction.resize_grab_radius_side;
        let busy = ui.input(|i| i.pointer.any_down() || i.pointer.any_pressed());
        let mut changed = None;
        for c in 0..widths.len().saturating_sub(1) {
            let x = cells[c].0 + cells[c].1 + 0.5 * spacing.x;
            let line = Rect::from_x_y_ranges(x..=x, top..=bottom);
            let resize = ui.interact(line.expand(grab), resize_id(c), Sense::click_and_drag());
            let mut at = x;
            if resize.dragged()
                && let Some(pointer) = ui.ctx().pointer_latest_pos()
            {
                let w = (widths[c] + pointer.x - x).max(self.columns[c].min);
                at = x - widths[c] + w;
                widths[c] = w;
                changed = Some(c);
            }
            let hovered = resize.hovered() && !busy;
            if hovered || resize.dragged() {
                ui.set_cursor_icon(egui::CursorIcon::ResizeColumn);
            }
            let visuals = &ui.style().visuals.widgets;
            let stroke = if resize.dragged() {
                visuals.active.bg_stroke
            } else if hovered {
                visuals.hovered.bg_stroke
            } else {
                visuals.noninteractive.bg_stroke
            };
            ui.painter()
                .line_segment([pos2(at, top), pos2(at, bottom)], stroke);
        }
        if let Some(c) = changed {
            self.fit(ui, &mut widths, width, Some(c));
        }
        if changed.is_some() || !remembered {
            ui.data_mut(|d| d.insert_persisted(self.id, widths));
        }
    }
}

impl GridRow<'_> {
    /// Column `col`'s rectangle.
    pub fn cell(&self, col: usize) -> Rect {
        let (x0, w) = self.cells.get(col).copied().unwrap_or((0.0, 0.0));
        Rect::from_x_y_ranges(x0..=x0 + w, self.rect.y_range())
    }

    /// Column `col`'s width (exactly the cell's, for a cache key).
    pub fn width(&self, col: usize) -> f32 {
        self.cells.get(col).map_or(0.0, |c| c.1)
    }

    /// A painter clipped to column `col`'s cell.
    pub fn painter(&self, ui: &Ui, col: usize) -> egui::Painter {
        ui.painter()
            .with_clip_rect(self.cell(col).intersect(ui.clip_rect()))
    }

    /// Paint `galley` into column `col`, `indent` points from its left edge, vertically
    /// centred and clipped to the cell. Placeholder colours take the row's text colour.
    pub fn text(&self, ui: &Ui, col: usize, indent: f32, galley: &Arc<Galley>) {
        let cell = self.cell(col);
        let visuals = ui.visuals();
        let colour = if self.selected {
            visuals.selection.stroke.color
        } else {
            visuals.text_color()
        };
        let pos = pos2(
            cell.left() + indent,
            cell.center().y - 0.5 * galley.size().y,
        )
        .round_ui();
        self.painter(ui, col).galley(pos, galley.clone(), colour);
    }

    /// A widget for cell `col` when one is needed: accessibility is on (it is then read
    /// as a label of `text`), or the pointer is over the cell (for a tooltip).
    pub fn cell_response(&self, ui: &mut Ui, col: usize, text: &str) -> Option<Response> {
        let cell = self.cell(col);
        let pointed = self.response.hovered() && ui.rect_contains_pointer(cell);
        if !(self.a11y || pointed) {
            return None;
        }
        let response = ui.interact(cell, self.response.id.with(col), Sense::hover());
        if self.a11y {
            response.widget_info(|| WidgetInfo::labeled(Role::Label, ui.is_enabled(), text));
        }
        Some(response)
    }
}
