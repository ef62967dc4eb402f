//! Spreadsheets for staff: Excel (`.xlsx`) and CSV, written row by row so an export of 100,000
//! residents never holds them all in memory (rust_xlsxwriter's constant-memory mode flushes each row
//! to a temporary file; CSV goes straight to the writer).
//!
//! Every sheet has a bold, frozen header row and an auto-filter; dates are real Excel dates (not
//! text), so staff can sort and filter; sheet names may be Japanese (Excel's 31-character limit and
//! forbidden characters are handled). CSV is UTF-8 with a BOM (so Excel detects the encoding) or
//! Shift_JIS on request, with CRLF line ends.

use std::io::Write;

use chrono::{NaiveDate, NaiveDateTime};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Integer,
    Date,
    DateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub title: String,
    pub kind: ColumnKind,
}

impl Column {
    pub fn new(title: impl Into<String>, kind: ColumnKind) -> Self {
        Self {
            title: title.into(),
            kind,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}
impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}
impl From<NaiveDate> for Cell {
    fn from(d: NaiveDate) -> Self {
        Cell::Date(d)
    }
}
impl From<NaiveDateTime> for Cell {
    fn from(d: NaiveDateTime) -> Self {
        Cell::DateTime(d)
    }
}
impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Empty, Into::into)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("could not write the spreadsheet: {0}")]
    Xlsx(#[from] XlsxError),
    #[error("could not write the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("row {row} has {got} cells, the sheet has {expected} columns")]
    Shape {
        row: u32,
        got: usize,
        expected: usize,
    },
    #[error("Excel allows at most 1,048,575 data rows in one sheet")]
    TooManyRows,
}

/// Excel's rules for sheet names: 1–31 characters, none of `[]:*?/\`, not starting or ending with '.
pub fn sheet_name(wanted: &str) -> String {
    let cleaned: String = wanted
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    let trimmed = cleaned.trim_matches('\'').trim();
    let name: String = trimmed.chars().take(31).collect();
    if name.is_empty() {
        "Sheet1".into()
    } else {
        name
    }
}

/// An `.xlsx` workbook built sheet by sheet, row by row.
pub struct XlsxExport {
    workbook: Workbook,
    header: Format,
    date: Format,
    datetime: Format,
}

impl Default for XlsxExport {
    fn default() -> Self {
        Self::new()
    }
}

impl XlsxExport {
    pub fn new() -> Self {
        Self {
            workbook: Workbook::new(),
            header: Format::new().set_bold().set_background_color("#E8EEF7"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm"),
        }
    }

    /// Starts a sheet; write its rows with [`Sheet::push`], then call [`Sheet::finish`].
    pub fn sheet(&mut self, name: &str, columns: &[Column]) -> Result<Sheet<'_>, ExportError> {
        let ws = self.workbook.add_worksheet_with_constant_memory()?;
        ws.set_name(sheet_name(name))?;
        for (i, col) in columns.iter().enumerate() {
            let c = i as u16;
            ws.write_string_with_format(0, c, &col.title, &self.header)?;
            let width = match col.kind {
                ColumnKind::Date => 12.0,
                ColumnKind::DateTime => 17.0,
                ColumnKind::Integer => 10.0,
                ColumnKind::Text => (col.title.chars().count() as f64 * 2.2).clamp(12.0, 40.0),
            };
            ws.set_column_width(c, width)?;
        }
        ws.set_freeze_panes(1, 0)?;
        Ok(Sheet {
            ws,
            columns: columns.to_vec(),
            row: 0,
            date: &self.date,
            datetime: &self.datetime,
        })
    }

    pub fn finish(mut self) -> Result<Vec<u8>, ExportError> {
        Ok(self.workbook.save_to_buffer()?)
    }

    pub fn finish_to(
        mut self,
        writer: impl Write + std::io::Seek + Send,
    ) -> Result<(), ExportError> {
        self.workbook.save_to_writer(writer)?;
        Ok(())
    }
}

pub struct Sheet<'a> {
    ws: &'a mut Worksheet,
    columns: Vec<Column>,
    row: u32,
    date: &'a Format,
    datetime: &'a Format,
}

impl Sheet<'_> {
    pub fn push(&mut self, cells: &[Cell]) -> Result<(), ExportError> {
        if cells.len() != self.columns.len() {
            return Err(ExportError::Shape {
                row: self.row + 1,
                got: cells.len(),
                expected: self.columns.len(),
            });
        }
        if self.row >= 1_048_575 {
            return Err(ExportError::TooManyRows);
        }
        self.row += 1;
        for (i, cell) in cells.iter().enumerate() {
            let c = i as u16;
            match cell {
                Cell::Text(s) => {
                    self.ws.write_string(self.row, c, s)?;
                }
                Cell::Int(n) => {
                    self.ws.write_number(self.row, c, *n as f64)?;
                }
                Cell::Date(d) => {
                    self.ws.write_date_with_format(self.row, c, d, self.date)?;
                }
                Cell::DateTime(d) => {
                    self.ws
                        .write_datetime_with_format(self.row, c, d, self.datetime)?;
                }
                Cell::Empty => {}
            }
        }
        Ok(())
    }

    /// Adds the auto-filter over the header and every row written.
    pub fn finish(self) -> Result<u32, ExportError> {
        let last_col = self.columns.len().saturating_sub(1) as u16;
        self.ws.autofilter(0, 0, self.row, last_col)?;
        Ok(self.row)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvEncoding {
    /// UTF-8 with a byte-order mark, so Excel opens Japanese text correctly.
    Utf8Bom,
    /// Shift_JIS (Windows-31J), for older systems; characters it cannot hold are counted.
    ShiftJis,
}

/// A CSV file written row by row.
pub struct CsvExport<W: Write> {
    out: W,
    encoding: CsvEncoding,
    /// Cells that held characters Shift_JIS cannot represent (written as `?`).
    pub unmappable: u64,
}

impl<W: Write> CsvExport<W> {
    pub fn new(mut out: W, encoding: CsvEncoding, columns: &[Column]) -> Result<Self, ExportError> {
        if encoding == CsvEncoding::Utf8Bom {
            out.write_all(b"\xEF\xBB\xBF")?;
        }
        let mut csv = Self {
            out,
            encoding,
            unmappable: 0,
        };
        let header: Vec<Cell> = columns
            .iter()
            .map(|c| Cell::Text(c.title.clone()))
            .collect();
        csv.push(&header)?;
        Ok(csv)
    }

    pub fn push(&mut self, cells: &[Cell]) -> Result<(), ExportError> {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let text = match cell {
                Cell::Text(s) => neutralise_formula(s),
                Cell::Int(n) => n.to_string(),
                Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
                Cell::DateTime(d) => d.format("%Y-%m-%d %H:%M").to_string(),
                Cell::Empty => String::new(),
            };
            if text.contains([',', '"', '\n', '\r']) {
                line.push('"');
                line.push_str(&text.replace('"', "\"\""));
                line.push('"');
            } else {
                line.push_str(&text);
            }
        }
        line.push_str("\r\n");
        match self.encoding {
            CsvEncoding::Utf8Bom => self.out.write_all(line.as_bytes())?,
            CsvEncoding::ShiftJis => {
                let mut bytes = Vec::with_capacity(line.len());
                for ch in line.chars() {
                    let mut buf = [0u8; 4];
                    let (encoded, _, unmappable) =
                        encoding_rs::SHIFT_JIS.encode(ch.encode_utf8(&mut buf));
                    if unmappable {
                        self.unmappable += 1;
                        bytes.push(b'?');
                    } else {
                        bytes.extend_from_slice(&encoded);
                    }
                }
                self.out.write_all(&bytes)?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<W, ExportError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The OWASP CSV-injection rule for text cells: a cell that starts with `=`, `+`, `-`, `@`, a tab
/// or a carriage return would be read as a formula by a spreadsheet opening the CSV file, so it gets
/// a leading single quote (`=1+1` → `'=1+1`), which shows the text as typed. Numbers and dates are
/// written by us and never pass through here; xlsx files need nothing (strings are stored as
/// strings there).
pub fn neutralise_formula(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// An invoice or credit note as a one-sheet workbook: header facts, line items, subtotal, tax, total.
pub fn invoice_xlsx(
    invoice: &tenants::billing::Invoice,
    tenant_name: &str,
) -> Result<Vec<u8>, ExportError> {
    let title = if invoice.kind == "credit_note" {
        "クレジットノート"
    } else {
        "請求書"
    };
    let mut book = XlsxExport::new();
    let columns = [
        Column::new("項目", ColumnKind::Text),
        Column::new("数量", ColumnKind::Integer),
        Column::new("単価（円）", ColumnKind::Integer),
        Column::new("金額（円）", ColumnKind::Integer),
    ];
    let mut sheet = book.sheet(title, &columns)?;
    for line in &invoice.lines {
        sheet.push(&[
            line.description.clone().into(),
            line.quantity.into(),
            line.unit_price_yen.into(),
            line.amount_yen.into(),
        ])?;
    }
    let t = &invoice.totals;
    let q = qualified_invoice_facts(invoice, tenant_name);
    let mut facts: Vec<(&str, Cell)> = vec![
        ("小計", t.subtotal_yen.into()),
        ("消費税（10%・切り捨て）", t.tax_yen.into()),
        ("合計", t.total_yen.into()),
    ];
    for (label, value) in q.rows() {
        facts.push((label, value.into()));
    }
    facts.push(("請求月", Cell::Date(invoice.month)));
    for (label, value) in facts {
        sheet.push(&[label.into(), Cell::Empty, Cell::Empty, value])?;
    }
    sheet.finish()?;
    book.finish()
}

/// What Japan's qualified-invoice rules (適格請求書, インボイス制度) ask an invoice to state, as
/// label / text pairs, for the Excel and the printable invoice alike: the issuer and its
/// registration number, the issue date, the recipient, the taxable amount and tax per rate (every
/// line of this service is standard-rated, 10 %; nothing is reduced-rated, 8 %), and the due date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedInvoiceFacts {
    pub number: String,
    pub issuer: String,
    pub registration_number: String,
    pub issued_on: String,
    pub recipient: String,
    /// (rate label, taxable amount, tax) per rate present on the invoice
    pub per_rate: Vec<(String, i64, i64)>,
    pub due_on: String,
}

impl QualifiedInvoiceFacts {
    /// The facts as (label, text) rows, in the order both renderings show them.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("番号", self.number.clone()),
            ("発行者", self.issuer.clone()),
            ("登録番号", self.registration_number.clone()),
            ("発行日", self.issued_on.clone()),
            ("請求先", self.recipient.clone()),
        ];
        for (rate, base, tax) in &self.per_rate {
            rows.push((
                "税率別内訳",
                format!("{rate}対象 {} 円　消費税 {} 円", yen(*base), yen(*tax)),
            ));
        }
        rows.push(("支払期限", self.due_on.clone()));
        rows
    }
}

fn yen(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

pub fn qualified_invoice_facts(
    invoice: &tenants::billing::Invoice,
    tenant_name: &str,
) -> QualifiedInvoiceFacts {
    let draft = "下書き（未確定）";
    let t = &invoice.totals;
    QualifiedInvoiceFacts {
        number: invoice.number.clone().unwrap_or_else(|| draft.into()),
        issuer: invoice
            .issuer
            .as_ref()
            .map_or_else(|| "（未設定）".into(), |i| i.name.clone()),
        registration_number: invoice
            .issuer
            .as_ref()
            .map_or_else(|| "（未設定）".into(), |i| i.registration_number.clone()),
        issued_on: invoice
            .issued_on
            .map_or_else(|| draft.into(), |d| d.format("%Y年%m月%d日").to_string()),
        recipient: format!("{tenant_name} 御中"),
        per_rate: vec![(
            format!("{}%", tenants::billing::pricing::TAX_PERCENT),
            t.subtotal_yen,
            t.tax_yen,
        )],
        due_on: invoice
            .due_on
            .map_or_else(|| draft.into(), |d| d.format("%Y年%m月%d日").to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_follow_excels_rules() {
        assert_eq!(sheet_name("予約者一覧"), "予約者一覧");
        assert_eq!(sheet_name("a/b:c"), "a_b_c");
        assert_eq!(sheet_name(&"長".repeat(40)).chars().count(), 31);
        assert_eq!(sheet_name("''"), "Sheet1");
    }

    #[test]
    fn csv_text_cells_that_start_a_formula_are_neutralised_and_numbers_are_not() {
        let cols = [
            Column::new("氏名", ColumnKind::Text),
            Column::new("件数", ColumnKind::Integer),
            Column::new("日", ColumnKind::Date),
        ];
        let mut csv = CsvExport::new(Vec::new(), CsvEncoding::Utf8Bom, &cols).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        for bad in ["=1+1", "+81 90", "-2+3", "@SUM(A1)", "\tx", "\r=1"] {
            csv.push(&[bad.into(), (-5i64).into(), day.into()]).unwrap();
        }
        csv.push(&["ヤマダ=".into(), Cell::Empty, Cell::Empty])
            .unwrap();
        let text = String::from_utf8(csv.finish().unwrap()[3..].to_vec()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[1], "'=1+1,-5,2026-12-01");
        assert_eq!(lines[2], "'+81 90,-5,2026-12-01");
        assert_eq!(lines[3], "'-2+3,-5,2026-12-01");
        assert_eq!(lines[4], "'@SUM(A1),-5,2026-12-01");
        assert_eq!(lines[5], "'\tx,-5,2026-12-01");
        assert_eq!(lines[6], "\"'\r=1\",-5,2026-12-01");
        assert_eq!(lines[7], "ヤマダ=,,");
    }

    #[test]
    fn csv_quotes_and_encodes() {
        let cols = [
            Column::new("氏名", ColumnKind::Text),
            Column::new("件数", ColumnKind::Integer),
        ];
        let mut csv = CsvExport::new(Vec::new(), CsvEncoding::Utf8Bom, &cols).unwrap();
        csv.push(&["ヤマダ, \"タロウ\"".into(), 3i64.into()])
            .unwrap();
        let bytes = csv.finish().unwrap();
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
        assert_eq!(
            String::from_utf8(bytes[3..].to_vec()).unwrap(),
            "氏名,件数\r\n\"ヤマダ, \"\"タロウ\"\"\",3\r\n"
        );

        let mut sjis = CsvExport::new(Vec::new(), CsvEncoding::ShiftJis, &cols).unwrap();
        sjis.push(&["ヤマダ 🙂".into(), Cell::Empty]).unwrap();
        assert_eq!(sjis.unmappable, 1);
        let bytes = sjis.finish().unwrap();
        let (decoded, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!errors);
        assert_eq!(decoded, "氏名,件数\r\nヤマダ ?,\r\n");
    }
}
