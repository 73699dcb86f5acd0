//! MySQL 5.7, as ONES plugins write it, to SQLite: parsed with sqlparser's
//! MySQL dialect, rewritten on the syntax tree, printed back. `CREATE TABLE`
//! is written anew from its parsed columns and constraints (SQLite's types,
//! `INTEGER PRIMARY KEY` for `AUTO_INCREMENT`, `KEY`s as `CREATE INDEX`,
//! table options dropped); in other statements MySQL's functions become
//! SQLite's (`NOW()`, `UNIX_TIMESTAMP()`, `CONCAT`, `IF`, …), `ON DUPLICATE
//! KEY UPDATE` becomes `ON CONFLICT DO UPDATE` with `excluded.`, `INSERT
//! IGNORE` becomes `INSERT OR IGNORE`. What is not translated is an error
//! that names it.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions_mut, AlterTableOperation, ColumnDef, ColumnOption, CreateTable, DoUpdate, Expr, FunctionArg,
    FunctionArgExpr, FunctionArguments, OnConflict, OnConflictAction, OnInsert, SqliteOnConflict, Statement,
    TableConstraint, Value,
};
use sqlparser::dialect::{MySqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

/// What a statement does, as `exec(operate, sql)` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Select,
    Insert,
    Update,
    Delete,
    Create,
    Alter,
    Drop,
    /// Statements a dump carries that mean nothing here (`SET NAMES`,
    /// `LOCK TABLES`, transactions): skipped.
    Nothing,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Select => "select",
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
            Kind::Create => "create",
            Kind::Alter => "alter",
            Kind::Drop => "drop",
            Kind::Nothing => "nothing",
        }
    }
}

/// One parsed statement.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub kind: Kind,
    pub statement: Statement,
}

/// `{{name}}` (ONES's table placeholder in `plugin.sql`) is the table's
/// own name: each instance has a database of its own.
pub fn unwrap_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("{{") {
        match rest[start + 2..].find("}}") {
            Some(len) if rest[start + 2..start + 2 + len].trim().chars().all(|c| c.is_alphanumeric() || c == '_') => {
                out.push_str(&rest[..start]);
                out.push_str(rest[start + 2..start + 2 + len].trim());
                rest = &rest[start + 2 + len + 2..];
            }
            _ => {
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parse MySQL text into statements. A table named with its database
/// (`other.t`) is refused: an instance's SQL reaches its own database only.
pub fn parse(sql: &str) -> Result<Vec<Parsed>, String> {
    let statements = Parser::parse_sql(&MySqlDialect {}, &unwrap_placeholders(sql)).map_err(|e| e.to_string())?;
    for s in &statements {
        let mut outside = None;
        let _ = sqlparser::ast::visit_relations(s, |name| {
            if name.0.len() > 1 {
                outside = Some(name.to_string());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        if let Some(name) = outside {
            return Err(format!(
                "table {name} names a database: a plugin's SQL reaches only its own database, by table names alone"
            ));
        }
    }
    statements.into_iter().map(|s| Ok(Parsed { kind: kind_of(&s), statement: s })).collect()
}

fn kind_of(s: &Statement) -> Kind {
    match s {
        Statement::Query(_) => Kind::Select,
        Statement::Insert(_) => Kind::Insert,
        Statement::Update(_) => Kind::Update,
        Statement::Delete(_) => Kind::Delete,
        Statement::CreateTable(_) | Statement::CreateIndex(_) | Statement::CreateView(_) => Kind::Create,
        Statement::AlterTable(_) => Kind::Alter,
        Statement::Drop { .. } | Statement::Truncate(_) => Kind::Drop,
        Statement::Set(_)
        | Statement::LockTables { .. }
        | Statement::UnlockTables
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Use(_) => Kind::Nothing,
        _ => Kind::Nothing,
    }
}

/// Whether a statement of this kind is one the translation knows: the
/// catch-all of [`kind_of`] also lands on `Nothing`.
fn skippable(s: &Statement) -> bool {
    matches!(
        s,
        Statement::Set(_)
            | Statement::LockTables { .. }
            | Statement::UnlockTables
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Use(_)
    )
}

/// The SQLite text of a parsed statement (several for a `CREATE TABLE`
/// with `KEY`s; none for one that means nothing here).
pub fn to_sqlite(p: &Parsed) -> Result<Vec<String>, String> {
    let mut s = p.statement.clone();
    if p.kind == Kind::Nothing {
        if skippable(&s) {
            return Ok(Vec::new());
        }
        let text = s.to_string();
        let head: String = text.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        return Err(format!("`{head} …` is not supported by the embedded SQLite plugin database"));
    }
    rewrite_expressions(&mut s)?;
    match &mut s {
        Statement::CreateTable(t) => create_table(t),
        Statement::Insert(insert) => {
            if insert.ignore {
                insert.ignore = false;
                insert.or = Some(SqliteOnConflict::Ignore);
            }
            if let Some(OnInsert::DuplicateKeyUpdate(assignments)) = insert.on.take() {
                insert.on = Some(OnInsert::OnConflict(OnConflict {
                    conflict_target: None,
                    action: OnConflictAction::DoUpdate(DoUpdate { assignments, selection: None }),
                }));
            }
            Ok(vec![s.to_string()])
        }
        Statement::AlterTable(alter) => {
            let table = alter.name.to_string();
            let mut out = Vec::new();
            for op in &alter.operations {
                out.push(match op {
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        format!("ALTER TABLE {table} ADD COLUMN {}", column(column_def, false)?.0)
                    }
                    AlterTableOperation::DropColumn { column_names, .. } if column_names.len() == 1 => {
                        format!("ALTER TABLE {table} DROP COLUMN {}", column_names[0])
                    }
                    AlterTableOperation::RenameColumn { old_column_name, new_column_name } => {
                        format!("ALTER TABLE {table} RENAME COLUMN {old_column_name} TO {new_column_name}")
                    }
                    AlterTableOperation::RenameTable { table_name } => {
                        format!("ALTER TABLE {table} RENAME TO {}", table_name.to_string().trim_start_matches("TO "))
                    }
                    other => {
                        return Err(format!(
                            "ALTER TABLE … {} is not supported by the embedded SQLite plugin database (ADD COLUMN, DROP COLUMN, RENAME are)",
                            first_words(&other.to_string(), 2)
                        ))
                    }
                });
            }
            Ok(out)
        }
        Statement::Truncate(t) => Ok(t.table_names.iter().map(|n| format!("DELETE FROM {}", n.name)).collect()),
        Statement::Drop { .. } => {
            // MySQL's `DROP INDEX i ON t`: SQLite's index names are the
            // database's, made `t_i` by `create_table`.
            let text = s.to_string();
            if let Some((head, table)) = text.split_once(" ON ") {
                let name = head.rsplit(' ').next().unwrap_or("");
                return Ok(vec![format!("DROP INDEX IF EXISTS {}", index_name(table.trim(), name))]);
            }
            Ok(vec![text])
        }
        _ => Ok(vec![s.to_string()]),
    }
}

fn first_words(s: &str, n: usize) -> String {
    s.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

fn bare(name: &str) -> String {
    name.trim_matches(['`', '"']).to_string()
}

fn index_name(table: &str, index: &str) -> String {
    format!("\"{}_{}\"", bare(table), bare(index))
}

/// SQLite's type for a MySQL column type (its affinity, by the type's name).
fn sqlite_type(mysql: &str) -> &'static str {
    let t = mysql.to_ascii_uppercase();
    if t.contains("INT") || t.starts_with("BOOL") || t.starts_with("BIT") {
        "INTEGER"
    } else if t.starts_with("FLOAT") || t.starts_with("DOUBLE") || t.starts_with("REAL") {
        "REAL"
    } else if t.starts_with("DECIMAL") || t.starts_with("NUMERIC") || t.starts_with("DEC") {
        "NUMERIC"
    } else if t.contains("BLOB") || t.contains("BINARY") {
        "BLOB"
    } else {
        // CHAR, VARCHAR, TEXT, ENUM, SET, JSON, DATE, DATETIME, TIMESTAMP, TIME, YEAR, …
        "TEXT"
    }
}

/// A column's SQLite definition, and whether it was `AUTO_INCREMENT`.
fn column(c: &ColumnDef, primary_alone: bool) -> Result<(String, bool), String> {
    let auto = c.options.iter().any(|o| {
        matches!(&o.option, ColumnOption::DialectSpecific(tokens)
            if tokens.iter().any(|t| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("AUTO_INCREMENT"))))
    });
    let inline_primary = c.options.iter().any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)));
    let mut out = format!("{} {}", c.name, sqlite_type(&c.data_type.to_string()));
    if auto && (inline_primary || primary_alone) {
        // SQLite numbers an INTEGER PRIMARY KEY itself (the rowid).
        out = format!("{} INTEGER PRIMARY KEY AUTOINCREMENT", c.name);
    }
    for o in &c.options {
        match &o.option {
            ColumnOption::Null => {}
            ColumnOption::NotNull => out.push_str(" NOT NULL"),
            ColumnOption::Default(e) => {
                let e = e.to_string();
                // An expression default needs parentheses in SQLite.
                if e.contains('(') {
                    out.push_str(&format!(" DEFAULT ({e})"));
                } else {
                    out.push_str(&format!(" DEFAULT {e}"));
                }
            }
            ColumnOption::PrimaryKey(_) if !auto => out.push_str(" PRIMARY KEY"),
            ColumnOption::PrimaryKey(_) => {}
            ColumnOption::Unique(_) => out.push_str(" UNIQUE"),
            ColumnOption::Check(c) => out.push_str(&format!(" {c}")),
            ColumnOption::ForeignKey(f) => out.push_str(&format!(" {f}")),
            // MySQL-only decorations with no effect on what is stored.
            ColumnOption::DialectSpecific(_)
            | ColumnOption::CharacterSet(_)
            | ColumnOption::Collation(_)
            | ColumnOption::Comment(_)
            | ColumnOption::OnUpdate(_) => {}
            other => {
                return Err(format!(
                    "column {}: `{other}` is not supported by the embedded SQLite plugin database",
                    c.name
                ))
            }
        }
    }
    Ok((out, auto))
}

fn create_table(t: &CreateTable) -> Result<Vec<String>, String> {
    if t.query.is_some() || t.like.is_some() {
        return Err("CREATE TABLE … AS SELECT / LIKE is not supported by the embedded SQLite plugin database".into());
    }
    let table = t.name.to_string();
    // A table-level PRIMARY KEY of one AUTO_INCREMENT column goes inline.
    let single_primary: Option<String> = t.constraints.iter().find_map(|c| match c {
        TableConstraint::PrimaryKey(p) if p.columns.len() == 1 => Some(bare(&p.columns[0].to_string())),
        _ => None,
    });
    let mut defs = Vec::new();
    let mut inlined = false;
    for c in &t.columns {
        let alone = single_primary.as_deref() == Some(bare(&c.name.to_string()).as_str());
        let (def, auto) = column(c, alone)?;
        inlined |= auto && alone;
        defs.push(def);
    }
    let mut after = Vec::new();
    for c in &t.constraints {
        match c {
            TableConstraint::PrimaryKey(_) if inlined => {}
            TableConstraint::PrimaryKey(p) => defs.push(format!("PRIMARY KEY ({})", columns(&p.columns))),
            TableConstraint::Unique(u) => defs.push(format!("UNIQUE ({})", columns(&u.columns))),
            TableConstraint::Index(i) => {
                let name = i
                    .name
                    .as_ref()
                    .map(|n| n.value.clone())
                    .unwrap_or_else(|| columns(&i.columns).replace(['"', '`', ',', ' '], ""));
                after.push(format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {table} ({})",
                    index_name(&table, &name),
                    columns(&i.columns)
                ));
            }
            TableConstraint::ForeignKey(_) | TableConstraint::Check(_) => defs.push(c.to_string()),
            other => {
                return Err(format!(
                    "table {table}: `{}` is not supported by the embedded SQLite plugin database",
                    first_words(&other.to_string(), 3)
                ))
            }
        }
    }
    let mut out = vec![format!(
        "CREATE TABLE {}{table} ({})",
        if t.if_not_exists { "IF NOT EXISTS " } else { "" },
        defs.join(", ")
    )];
    out.extend(after);
    Ok(out)
}

fn columns(cols: &[sqlparser::ast::IndexColumn]) -> String {
    // `KEY k (name(10))`: MySQL's prefix length means nothing to SQLite.
    cols.iter()
        .map(|c| {
            let s = c.column.expr.to_string();
            match s.find('(') {
                Some(i) if !s.starts_with('(') => s[..i].to_string(),
                _ => s,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The arguments of a plain call, printed.
fn args(f: &sqlparser::ast::Function) -> Vec<String> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e.to_string(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn sqlite_expr(text: &str) -> Result<Expr, String> {
    Parser::new(&SQLiteDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| format!("cannot translate to SQLite ({text}): {e}"))
}

/// MySQL's functions and literals in every expression, as SQLite has them.
fn rewrite_expressions(s: &mut Statement) -> Result<(), String> {
    let mut failure = None;
    let _ = visit_expressions_mut(s, |e| {
        match e {
            Expr::Value(v) => {
                if let Value::DoubleQuotedString(text) = &v.value {
                    v.value = Value::SingleQuotedString(text.clone());
                }
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_uppercase();
                let a = args(f);
                let now = "datetime('now', 'localtime')";
                let replacement = match (name.as_str(), a.as_slice()) {
                    ("NOW" | "SYSDATE" | "CURRENT_TIMESTAMP" | "LOCALTIME" | "LOCALTIMESTAMP", _) => {
                        Some(now.to_string())
                    }
                    ("CURDATE" | "CURRENT_DATE", _) => Some("date('now', 'localtime')".into()),
                    ("CURTIME" | "CURRENT_TIME", _) => Some("time('now', 'localtime')".into()),
                    ("UNIX_TIMESTAMP", []) => Some("CAST(strftime('%s', 'now') AS INTEGER)".into()),
                    ("UNIX_TIMESTAMP", [x]) => Some(format!("CAST(strftime('%s', {x}, 'utc') AS INTEGER)")),
                    ("FROM_UNIXTIME", [x]) => Some(format!("datetime({x}, 'unixepoch', 'localtime')")),
                    ("CONCAT", parts) if !parts.is_empty() => Some(format!("({})", parts.join(" || "))),
                    ("IF", [c, t, f]) => Some(format!("iif({c}, {t}, {f})")),
                    ("LAST_INSERT_ID", []) => Some("last_insert_rowid()".into()),
                    ("RAND", []) => Some("((random() / 18446744073709551616.0) + 0.5)".into()),
                    ("UUID", []) => Some("lower(hex(randomblob(16)))".into()),
                    ("LCASE", [x]) => Some(format!("lower({x})")),
                    ("UCASE", [x]) => Some(format!("upper({x})")),
                    ("CHAR_LENGTH" | "CHARACTER_LENGTH", [x]) => Some(format!("length({x})")),
                    ("VALUES", [col]) => Some(format!("excluded.{col}")),
                    ("DATE_FORMAT" | "STR_TO_DATE" | "DATE_ADD" | "DATE_SUB" | "TIMESTAMPDIFF" | "FIND_IN_SET", _) => {
                        failure = Some(format!(
                            "{name}() is not translated for the embedded SQLite plugin database; use the MySQL backend ([plugin_db] url)"
                        ));
                        None
                    }
                    _ => None,
                };
                if let Some(text) = replacement {
                    match sqlite_expr(&text) {
                        Ok(expr) => *e = expr,
                        Err(why) => failure = Some(why),
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}
