//! TypeScript → JavaScript in-process with oxc: types stripped, nothing else
//! lowered (QuickJS runs modern JS). Done once per file when a plugin loads.

use std::path::Path;

use oxc::allocator::Allocator;
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::parser::{Parser, ParserReturn};
use oxc::semantic::SemanticBuilder;
use oxc::span::SourceType;
use oxc::transformer::{TransformOptions, Transformer};

/// A transpiled module: JS text plus a map from generated lines to source lines.
#[derive(Debug, Clone)]
pub struct Transpiled {
    pub code: String,
    /// `line_map[generated_line - 1]` = original line (1-based); empty for plain JS.
    pub line_map: Vec<u32>,
    /// A CommonJS file (JS without `import`/`export` that uses `require`,
    /// `exports` or `module`): the string literals it passes to `require`,
    /// in order. [`crate::code::project`] wraps such a file into a module.
    pub commonjs: Option<Vec<String>>,
    /// Its static imports and re-exports, where they are in the source:
    /// what a failure to link them is reported at.
    pub imports: Vec<Import>,
}

/// One static import (or re-export) of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The specifier as written: `./util`, `@ones-op/fetch`.
    pub from: String,
    /// The name taken from it (`default` for a default import); `None` for
    /// a namespace, `export *` or bare import.
    pub name: Option<String>,
    pub line: usize,
    pub column: usize,
}

/// A syntax or type-stripping error at a place in the source.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The `compilerOptions` of a project's `tsconfig.json` that change what
/// its TypeScript compiles to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TsConfig {
    /// TypeScript's `experimentalDecorators`: decorators compiled to calls.
    pub experimental_decorators: bool,
    /// `emitDecoratorMetadata` (needs a `Reflect.metadata` polyfill at run time).
    pub emit_decorator_metadata: bool,
}

impl TsConfig {
    /// The settings of `backend/tsconfig.json`, else of the project root's
    /// `tsconfig.json` (`extends` is not followed); none when neither is there.
    pub fn find(project: &Path) -> Result<TsConfig, String> {
        for rel in ["backend/tsconfig.json", "tsconfig.json"] {
            if let Ok(text) = std::fs::read_to_string(project.join(rel)) {
                return TsConfig::parse(&text).map_err(|e| format!("{rel}:{e}"));
            }
        }
        Ok(TsConfig::default())
    }

    /// tsconfig is JSON with comments and trailing commas: read it as the
    /// JavaScript object literal it also is.
    pub fn parse(text: &str) -> Result<TsConfig, String> {
        use oxc::ast::ast::{Expression, ObjectExpression, ObjectPropertyKind};
        fn get<'b, 'a>(obj: &'b ObjectExpression<'a>, key: &str) -> Option<&'b Expression<'a>> {
            obj.properties.iter().rev().find_map(|p| match p {
                ObjectPropertyKind::ObjectProperty(p) if p.key.static_name().is_some_and(|k| k == key) => {
                    Some(&p.value)
                }
                _ => None,
            })
        }
        let allocator = Allocator::default();
        let expr = Parser::new(&allocator, text, SourceType::mjs()).parse_expression().map_err(|errs| {
            let e = errs.first().map(|e| located(text, e));
            e.map_or_else(|| "1:1: not valid JSON".into(), |e| format!("{}:{}: {}", e.line, e.column, e.message))
        })?;
        let Expression::ObjectExpression(root) = &expr else { return Err("1:1: not a JSON object".into()) };
        let Some(Expression::ObjectExpression(options)) = get(root, "compilerOptions") else {
            return Ok(TsConfig::default());
        };
        let flag = |key| matches!(get(options, key), Some(Expression::BooleanLiteral(b)) if b.value);
        Ok(TsConfig {
            experimental_decorators: flag("experimentalDecorators"),
            emit_decorator_metadata: flag("emitDecoratorMetadata"),
        })
    }
}

/// Strip TypeScript from `source` (named `path`); plain `.js`/`.mjs` is only
/// syntax-checked and kept byte for byte, so its line numbers stay true.
pub fn transpile(path: &Path, source: &str) -> Result<Transpiled, Vec<SyntaxError>> {
    transpile_with(path, source, TsConfig::default())
}

/// The early errors of an ES module that the parser leaves to semantic
/// analysis (redeclared names and the like).
fn early_errors(source: &str, program: &oxc::ast::ast::Program) -> Result<(), Vec<SyntaxError>> {
    let semantic = SemanticBuilder::new().with_check_syntax_error(true).build(program);
    match semantic.diagnostics.is_empty() {
        true => Ok(()),
        false => Err(each_once(semantic.diagnostics.iter().map(|e| located(source, e)))),
    }
}

/// tsc's TS2440: an imported name declared again as a value. oxc lets the
/// local declaration win and drops the import as if it named a type, so
/// the module would run with another meaning than the one written.
fn imports_redeclared(source: &str, program: &oxc::ast::ast::Program) -> Result<(), Vec<SyntaxError>> {
    use oxc::ast::ast::{
        BindingIdentifier, Declaration, ExportDefaultDeclarationKind, ImportDeclarationSpecifier, Statement,
    };
    fn names<'b, 'a>(d: &'b Declaration<'a>) -> Vec<&'b BindingIdentifier<'a>> {
        match d {
            Declaration::VariableDeclaration(v) => {
                v.declarations.iter().flat_map(|d| d.id.get_binding_identifiers()).collect()
            }
            Declaration::FunctionDeclaration(_)
            | Declaration::ClassDeclaration(_)
            | Declaration::TSEnumDeclaration(_) => d.id().into_iter().collect(),
            _ => Vec::new(),
        }
    }
    let mut imported = Vec::new();
    let mut declared: Vec<&BindingIdentifier> = Vec::new();
    for stmt in &program.body {
        match stmt {
            Statement::ImportDeclaration(i) if !i.import_kind.is_type() => {
                for spec in i.specifiers.iter().flatten() {
                    let local = match spec {
                        ImportDeclarationSpecifier::ImportSpecifier(s) if s.import_kind.is_type() => continue,
                        ImportDeclarationSpecifier::ImportSpecifier(s) => &s.local,
                        ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => &s.local,
                        ImportDeclarationSpecifier::ImportNamespaceSpecifier(s) => &s.local,
                    };
                    imported.push(local.name.as_str());
                }
            }
            Statement::ExportDeclaration(e) => declared.extend(names(&e.declaration)),
            Statement::ExportDefaultDeclaration(e) => match &e.declaration {
                ExportDefaultDeclarationKind::FunctionDeclaration(f) => declared.extend(f.id.as_ref()),
                ExportDefaultDeclarationKind::ClassDeclaration(c) => declared.extend(c.id.as_ref()),
                _ => {}
            },
            other => declared.extend(other.as_declaration().map(names).unwrap_or_default()),
        }
    }
    let clashes: Vec<SyntaxError> = declared
        .iter()
        .filter(|id| imported.contains(&id.name.as_str()))
        .map(|id| {
            let message = format!("Import declaration conflicts with local declaration of `{}`", id.name);
            position(source, id.span.start as usize, message)
        })
        .collect();
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(clashes)
    }
}

/// [`transpile`] under a project's [`TsConfig`].
pub fn transpile_with(path: &Path, source: &str, tsconfig: TsConfig) -> Result<Transpiled, Vec<SyntaxError>> {
    let is_ts = matches!(path.extension().and_then(|e| e.to_str()), Some("ts" | "mts" | "cts"));
    let allocator = Allocator::default();
    let parsed = parse(&allocator, source, is_ts)?;
    // Where the imports are in the source as written (the edits below move
    // columns on the first line).
    let imports = imports(source, &parsed.module_record);
    if let Some(edited) = parsed.module_record.has_module_syntax.then(|| sync_twins(source, &parsed.program)).flatten()
    {
        // The same lines with the twins in; what is wrong with it is wrong
        // with the source (the edits are only names and an appended tail).
        let allocator = Allocator::default();
        let parsed = parse(&allocator, &edited, is_ts)?;
        return transpile_parsed(path, &edited, parsed, &allocator, imports, is_ts, tsconfig);
    }
    transpile_parsed(path, source, parsed, &allocator, imports, is_ts, tsconfig)
}

fn parse<'a>(allocator: &'a Allocator, source: &'a str, is_ts: bool) -> Result<ParserReturn<'a>, Vec<SyntaxError>> {
    let source_type = if is_ts { SourceType::ts() } else { SourceType::mjs() };
    let parsed = Parser::new(allocator, source, source_type).parse();
    if !parsed.diagnostics.is_empty() {
        return Err(parsed.diagnostics.iter().map(|e| located(source, e)).collect());
    }
    Ok(parsed)
}

/// Suffix of the name of the synchronous twin of an `async` function that
/// never awaits (see [`sync_twins`]); the host calls a hook's twin when
/// there is one.
pub const SYNC_TWIN: &str = "__interpose_sync";

/// An `async function` with no `await` of its own runs to its end when it
/// is called, so calling its body as a plain function and taking what it
/// returns (or throws) as the promise would have settled gives the same
/// result, without QuickJS's async machinery (docs/decisions.md, "Sync
/// twins", says what that saves). Each such top-level function becomes `function
/// NAME__interpose_sync` where it stands — its lines unchanged, so errors
/// point at the source — and `async function NAME(...args)` calling it is
/// appended, exported if the original was: the plugin's own code sees the
/// same async function under the same name. A top-level `const NAME =
/// async (…) => …` (or `= async function …`) that never awaits becomes
/// `const NAME = __interpose_twin((…) => …, "NAME")` in place: the helper
/// returns an async function named NAME, of the same length, calling the
/// now synchronous function, and carrying it as its twin. `None` when there
/// is no such function.
fn sync_twins(source: &str, program: &oxc::ast::ast::Program<'_>) -> Option<String> {
    use oxc::ast::ast::{
        ArrowFunctionBody, ArrowFunctionExpression, AwaitExpression, BindingPattern, Declaration, Expression,
        ForOfStatement, Function, FunctionBody, Statement, VariableDeclaration,
    };
    use oxc::ast_visit::{walk, Visit};
    use oxc::syntax::scope::ScopeFlags;
    /// Finds an `await` of the function itself (not of nested functions).
    #[derive(Default)]
    struct Awaits(bool);
    impl<'a> Visit<'a> for Awaits {
        fn visit_await_expression(&mut self, _: &AwaitExpression<'a>) {
            self.0 = true;
        }
        fn visit_for_of_statement(&mut self, it: &ForOfStatement<'a>) {
            self.0 |= it.r#await;
            walk::walk_for_of_statement(self, it);
        }
        fn visit_function(&mut self, _: &Function<'a>, _: ScopeFlags) {}
        fn visit_arrow_function_expression(&mut self, _: &ArrowFunctionExpression<'a>) {}
    }
    let never_awaits = |body: &FunctionBody<'_>| {
        let mut awaits = Awaits::default();
        awaits.visit_function_body(body);
        !awaits.0
    };
    let arrow_never_awaits = |body: &ArrowFunctionBody<'_>| {
        let mut awaits = Awaits::default();
        awaits.visit_arrow_function_body(body);
        !awaits.0
    };
    let functions = program.body.iter().filter_map(|statement| match statement {
        Statement::FunctionDeclaration(f) => Some((f.span.start, &**f, false)),
        Statement::ExportDeclaration(e) => match &e.declaration {
            Declaration::FunctionDeclaration(f) => Some((e.span.start, &**f, true)),
            _ => None,
        },
        _ => None,
    });
    // TypeScript overloads (declarations without a body) stay with their function.
    let overloaded: Vec<&str> = functions
        .clone()
        .filter(|(_, f, _)| f.body.is_none())
        .filter_map(|(_, f, _)| f.id.as_ref().map(|id| id.name.as_str()))
        .collect();
    // (start, end, replacement), in source order; and the appended async functions.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut carry = String::new();
    let mut tail = String::new();
    for (start, f, exported) in functions {
        let (Some(id), Some(body)) = (&f.id, &f.body) else { continue };
        if !f.r#async || f.generator || overloaded.contains(&id.name.as_str()) || !never_awaits(body) {
            continue;
        }
        let (start, end, name) = (start as usize, id.span.end as usize, id.name.as_str());
        // `export async function\n  name` keeps its line breaks.
        let breaks = source[start..end].matches('\n').count();
        edits.push((start, end, format!("function {name}{SYNC_TWIN}{}", "\n".repeat(breaks))));
        // Each async function carries its twin, set before any of the
        // module's own code runs (function declarations are hoisted): the
        // host takes the twin from the function it is about to call, so a
        // name exported for something else, or rebound, never reaches the
        // wrong twin. It goes on the first line (after a `#!` line), so no
        // line moves.
        carry.push_str(&format!("{name}.{SYNC_TWIN} = {name}{SYNC_TWIN}; "));
        let export = if exported { "export " } else { "" };
        tail.push_str(&format!(
            "\n{export}async function {name}(...args) {{ return {name}{SYNC_TWIN}.apply(this, args); }}"
        ));
    }
    let declarations = program.body.iter().filter_map(|statement| match statement {
        Statement::VariableDeclaration(d) => Some(&**d),
        Statement::ExportDeclaration(e) => match &e.declaration {
            Declaration::VariableDeclaration(d) => Some(&**d),
            _ => None,
        },
        _ => None,
    });
    let mut helper = false;
    for declarator in declarations.flat_map(|d: &VariableDeclaration<'_>| d.declarations.iter()) {
        let BindingPattern::BindingIdentifier(id) = &declarator.id else { continue };
        // A named function expression keeps its own name.
        let (span, twin, name) = match &declarator.init {
            Some(Expression::ArrowFunctionExpression(a)) => {
                (a.span, a.r#async && arrow_never_awaits(&a.body), id.name.as_str())
            }
            Some(Expression::FunctionExpression(f)) => (
                f.span,
                f.r#async && !f.generator && f.body.as_ref().is_some_and(|b| never_awaits(b)),
                f.id.as_ref().map_or(id.name.as_str(), |own| own.name.as_str()),
            ),
            _ => continue,
        };
        let (start, end) = (span.start as usize, span.end as usize);
        if !twin || !source[start..].starts_with("async") {
            continue;
        }
        edits.push((start, start + "async".len(), "__interpose_twin(".into()));
        edits.push((end, end, format!(", {name:?})")));
        helper = true;
    }
    if edits.is_empty() {
        return None;
    }
    if helper {
        // Module-scoped and hoisted: every initializer may use it.
        carry.push_str(&format!(
            "function __interpose_twin(f, name) {{ const a = {{ async [name](...args) {{ return f.apply(this, args); }} }}[name]; \
             Object.defineProperty(a, 'length', {{ value: f.length }}); \
             Object.defineProperty(f, 'name', {{ value: name }}); a.{SYNC_TWIN} = f; return a; }} "
        ));
    }
    edits.sort_by_key(|e| (e.0, e.1));
    let first = if source.starts_with("#!") { source.find('\n').map_or(source.len(), |n| n + 1) } else { 0 };
    let mut out = String::with_capacity(source.len() + carry.len() + tail.len() + 64);
    out.push_str(&source[..first]);
    out.push_str(&carry);
    let mut at = first;
    for (start, end, text) in &edits {
        out.push_str(&source[at..*start]);
        out.push_str(text);
        at = *end;
    }
    out.push_str(&source[at..]);
    out.push_str(&tail);
    out.push('\n');
    Some(out)
}

fn transpile_parsed<'a>(
    path: &Path,
    source: &'a str,
    parsed: ParserReturn<'a>,
    allocator: &'a Allocator,
    imports: Vec<Import>,
    is_ts: bool,
    tsconfig: TsConfig,
) -> Result<Transpiled, Vec<SyntaxError>> {
    if !is_ts {
        // `.mjs` is an ES module by name, as in Node.
        let may_be_commonjs = !parsed.module_record.has_module_syntax && path.extension().is_none_or(|e| e != "mjs");
        let commonjs = may_be_commonjs.then(|| commonjs_requires(&parsed.program)).flatten();
        if commonjs.is_none() {
            // QuickJS misses some early errors Node reports (a function
            // declared with an imported name, say); a CommonJS script runs
            // as a function body, where those names are fine.
            early_errors(source, &parsed.program)?;
        }
        return Ok(Transpiled { code: source.to_string(), line_map: Vec::new(), commonjs, imports });
    }
    let mut program = parsed.program;
    if !tsconfig.experimental_decorators {
        if let Some(at) = first_decorator(&program) {
            return Err(vec![position(
                source,
                at,
                "a decorator: interpose compiles TypeScript's decorators as tsc does with \
                 \"experimentalDecorators\": true — set it in tsconfig.json (backend/ or the project root); \
                 the TC39 (TypeScript 5) form is not supported"
                    .into(),
            )]);
        }
    }
    imports_redeclared(source, &program)?;
    let semantic = SemanticBuilder::new()
        .with_excess_capacity(2.0)
        .with_enum_eval(true)
        .with_check_syntax_error(true)
        .build(&program);
    if !semantic.diagnostics.is_empty() {
        return Err(each_once(semantic.diagnostics.iter().map(|e| located(source, e))));
    }
    let scoping = semantic.semantic.into_scoping();
    let mut options = TransformOptions::default();
    options.decorator.legacy = tsconfig.experimental_decorators;
    options.decorator.emit_decorator_metadata = tsconfig.emit_decorator_metadata;
    options.helper_loader.module_name = crate::code::builtins::HELPERS_PREFIX.into();
    let ret = Transformer::new(allocator, path, &options).build_with_scoping(scoping, &mut program);
    if !ret.diagnostics.is_empty() {
        return Err(ret.diagnostics.iter().map(|e| located(source, e)).collect());
    }
    let out = Codegen::new()
        .with_options(CodegenOptions { source_map_path: Some(path.to_path_buf()), ..CodegenOptions::default() })
        .build(&program);
    let mut line_map = Vec::new();
    if let Some(map) = &out.map {
        for token in map.get_tokens() {
            let dst = token.get_dst_line() as usize;
            if line_map.len() <= dst {
                line_map.resize(dst + 1, 0);
            }
            if line_map[dst] == 0 {
                line_map[dst] = token.get_src_line() + 1;
            }
        }
        // Lines without a token inherit the previous mapped line.
        let mut last = 1;
        for l in &mut line_map {
            if *l == 0 {
                *l = last;
            } else {
                last = *l;
            }
        }
    }
    Ok(Transpiled { code: out.code, line_map, commonjs: None, imports })
}

/// The names an ES module exports, in source order, `default` last
/// (`export *` adds none here).
pub(crate) fn export_names(source: &str) -> Vec<String> {
    use oxc::syntax::module_record::ExportExportName;
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, SourceType::mjs()).parse();
    let record = &parsed.module_record;
    let mut entries: Vec<_> = record.local_export_entries.iter().chain(&record.indirect_export_entries).collect();
    entries.sort_by_key(|e| e.span.start);
    let mut names: Vec<String> = entries
        .iter()
        .filter_map(|e| match &e.export_name {
            ExportExportName::Name(n) => Some(n.name.to_string()),
            _ => None,
        })
        .collect();
    if entries.iter().any(|e| e.export_name.is_default()) {
        names.push("default".into());
    }
    names
}

/// The static imports of a parsed module (types excepted: they are
/// stripped), in source order.
fn imports(source: &str, record: &oxc::syntax::module_record::ModuleRecord) -> Vec<Import> {
    use oxc::syntax::module_record::{ExportImportName, ImportImportName};
    let at = |from: &str, name: Option<&str>, offset: u32| {
        let p = position(source, offset as usize, String::new());
        (offset, Import { from: from.to_string(), name: name.map(str::to_string), line: p.line, column: p.column })
    };
    let mut found: Vec<(u32, Import)> = Vec::new();
    for e in record.import_entries.iter().filter(|e| !e.is_type) {
        let from = e.module_request.name.as_str();
        found.push(match &e.import_name {
            ImportImportName::Name(n) => at(from, Some(n.name.as_str()), n.span.start),
            ImportImportName::Default(span) => at(from, Some("default"), span.start),
            ImportImportName::NamespaceObject => at(from, None, e.module_request.span.start),
        });
    }
    for e in record.indirect_export_entries.iter().chain(&record.star_export_entries) {
        let Some(m) = &e.module_request else { continue };
        found.push(match &e.import_name {
            ExportImportName::Name(n) => at(m.name.as_str(), Some(n.name.as_str()), n.span.start),
            _ => at(m.name.as_str(), None, m.span.start),
        });
    }
    // Bare imports (`import './setup'`) have no entries.
    for (from, requests) in &record.requested_modules {
        for r in requests.iter().filter(|r| !r.is_type) {
            if !found.iter().any(|(_, i)| i.from == from.as_str()) {
                found.push(at(from.as_str(), None, r.span.start));
            }
        }
    }
    found.sort_by_key(|(offset, _)| *offset);
    found.into_iter().map(|(_, i)| i).collect()
}

/// If `program` uses CommonJS (`require`, `exports`, `module`), the string
/// literals passed to `require(…)`.
fn commonjs_requires(program: &oxc::ast::ast::Program<'_>) -> Option<Vec<String>> {
    use oxc::ast::ast::{Argument, CallExpression, Expression, IdentifierReference};
    use oxc::ast_visit::{walk, Visit};

    #[derive(Default)]
    struct Scan {
        uses: bool,
        requires: Vec<String>,
    }
    impl<'a> Visit<'a> for Scan {
        fn visit_identifier_reference(&mut self, it: &IdentifierReference<'a>) {
            self.uses |= matches!(it.name.as_str(), "require" | "exports" | "module");
        }
        fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
            if let (Expression::Identifier(callee), [Argument::StringLiteral(spec)]) =
                (&it.callee, it.arguments.as_slice())
            {
                if callee.name == "require" && !self.requires.iter().any(|r| r == spec.value.as_str()) {
                    self.requires.push(spec.value.to_string());
                }
            }
            walk::walk_call_expression(self, it);
        }
    }
    let mut scan = Scan::default();
    scan.visit_program(program);
    scan.uses.then_some(scan.requires)
}

/// Where the first decorator in `program` starts, if it has one.
fn first_decorator(program: &oxc::ast::ast::Program<'_>) -> Option<usize> {
    use oxc::ast::ast::Decorator;
    use oxc::ast_visit::Visit;

    struct Scan(Option<usize>);
    impl<'a> Visit<'a> for Scan {
        fn visit_decorator(&mut self, it: &Decorator<'a>) {
            self.0 = Some(self.0.map_or(it.span.start as usize, |at| at.min(it.span.start as usize)));
        }
    }
    let mut scan = Scan(None);
    scan.visit_program(program);
    scan.0
}

fn located(source: &str, e: &oxc::diagnostics::OxcDiagnostic) -> SyntaxError {
    // The primary label, else the last (a redeclaration labels the first
    // declaration, then the one refused); the others are named in the message.
    let labels = &e.labels;
    let at = labels.iter().position(|l| l.primary()).or(labels.len().checked_sub(1));
    let offset = at.map(|i| labels[i].offset() as usize).unwrap_or(0);
    let mut message = e.message.to_string();
    for (i, l) in labels.iter().enumerate() {
        if Some(i) != at {
            let other = position(source, l.offset() as usize, String::new());
            let what = l.label().unwrap_or("see");
            message.push_str(&format!(" ({what}: line {}, column {})", other.line, other.column));
        }
    }
    if let Some(help) = &e.help {
        message.push_str(&format!(" ({help})"));
    }
    position(source, offset, message)
}

/// Each error once (a name clashing with an import and an export is
/// reported for both).
fn each_once(errors: impl Iterator<Item = SyntaxError>) -> Vec<SyntaxError> {
    let mut out: Vec<SyntaxError> = Vec::new();
    for e in errors {
        if !out.iter().any(|o| o.line == e.line && o.column == e.column && o.message == e.message) {
            out.push(e);
        }
    }
    out
}

/// `message` at byte `offset` of `source`, as line and column.
fn position(source: &str, offset: usize, message: String) -> SyntaxError {
    let before = source.get(..offset.min(source.len())).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    SyntaxError { line, column, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_imports_where_they_are() {
        let src = "import type { T } from './types';\nimport d, { a, b as c } from './m';\nimport * as ns from '@ones-op/fetch';\n\
                   import './side';\nexport { x } from './re';\nexport * from './all';\nconst k: T = a;\n";
        let t = transpile(Path::new("index.ts"), src).expect("ok");
        let seen: Vec<(&str, Option<&str>, usize, usize)> =
            t.imports.iter().map(|i| (i.from.as_str(), i.name.as_deref(), i.line, i.column)).collect();
        assert_eq!(
            seen,
            [
                ("./m", Some("default"), 2, 8),
                ("./m", Some("a"), 2, 13),
                ("./m", Some("b"), 2, 16),
                ("@ones-op/fetch", None, 3, 21),
                ("./side", None, 4, 8),
                ("./re", Some("x"), 5, 10),
                ("./all", None, 6, 15),
            ]
        );
        assert_eq!(export_names("export const a = 1;\nexport default 2;\nexport { a as b };\n"), ["a", "b", "default"]);
    }

    #[test]
    fn async_functions_that_never_await_get_a_synchronous_twin() {
        let src = "export async function plain(r) { return { a: r }; }\n\
                   export async function waits(r) { return await r; }\n\
                   export async function loops(r) { for await (const x of r) {} }\n\
                   export async function nested(r) { const g = async () => await r; return g; }\n\
                   async function local(r) { return 1; }\n\
                   export async function\n  split(r) {\n  throw new Error('line 8');\n}\n\
                   export function notAsync() {}\nexport async function* gen() {}\n";
        let code = transpile(Path::new("index.js"), src).expect("ok").code;
        for twin in ["plain", "nested", "local", "split"] {
            assert!(code.contains(&format!("function {twin}{SYNC_TWIN}")), "{twin}: {code}");
            assert!(code.contains(&format!("{twin}.{SYNC_TWIN} = {twin}{SYNC_TWIN}; ")), "{twin}: {code}");
        }
        for kept in ["waits", "loops", "notAsync", "gen"] {
            assert!(!code.contains(&format!("{kept}{SYNC_TWIN}")), "{kept}: {code}");
        }
        assert!(
            code.contains("\nexport async function plain(...args) { return plain__interpose_sync.apply(this, args); }")
        );
        assert!(code.contains("\nasync function local(...args)"), "not exported, as the original: {code}");
        // Lines stay where they were (the throw is on line 8).
        assert_eq!(code.lines().nth(7), Some("  throw new Error('line 8');"), "{code}");
        // A `#!` line stays first; TypeScript overloads keep their function.
        let code =
            transpile(Path::new("index.js"), "#!/usr/bin/env node\nexport async function f() {}\n").expect("ok").code;
        assert!(code
            .starts_with("#!/usr/bin/env node\nf.__interpose_sync = f__interpose_sync; function f__interpose_sync()"));
        let ts = "export async function o(a: string): Promise<1>;\nexport async function o(a: any) { return 1 }\n";
        let code = transpile(Path::new("index.ts"), ts).expect("ok").code;
        assert!(!code.contains(SYNC_TWIN), "{code}");
        // A script (CommonJS) is left alone: an `export` would make it a module.
        let cjs = "async function f() { return 1 }\nmodule.exports = { f }\n";
        assert_eq!(transpile(Path::new("a.js"), cjs).expect("ok").code, cjs);
    }

    #[test]
    fn async_arrows_that_never_await_get_a_synchronous_twin() {
        let src = "export const a = async (r) => ({ r });\n\
                   export const b = async function (r) {\n  return r;\n};\n\
                   const c = async r => r, d = async () => await 1;\n\
                   export const e = async () => { const g = async () => await 1; return g; };\n\
                   export const f = (async () => 1);\nexport const { h } = { h: async () => 1 };\n\
                   export const i = async function* () {};\nlet j = async () => { for await (const x of []) {} };\n";
        let code = transpile(Path::new("index.js"), src).expect("ok").code;
        let lines: Vec<&str> = code.lines().collect();
        assert!(lines[0].starts_with("function __interpose_twin(f, name) {"), "{code}");
        assert!(lines[0].ends_with("export const a = __interpose_twin( (r) => ({ r }), \"a\");"), "{code}");
        assert_eq!(lines[1], "export const b = __interpose_twin( function (r) {");
        assert_eq!(lines[3], "}, \"b\");", "lines stay where they were");
        assert_eq!(lines[4], "const c = __interpose_twin( r => r, \"c\"), d = async () => await 1;");
        assert!(lines[5].starts_with("export const e = __interpose_twin( () => {"), "{code}");
        for kept in ["export const f = (async () => 1);", "export const { h } = { h: async () => 1 };"] {
            assert!(lines.contains(&kept), "{kept}: {code}");
        }
        assert!(lines.contains(&"export const i = async function* () {};"), "{code}");
        assert!(lines[9].starts_with("let j = async ()"), "{code}");
        let code = transpile(Path::new("index.js"), "export const k = async function own() {};\n").expect("ok").code;
        assert!(code.contains("export const k = __interpose_twin( function own() {}, \"own\");"), "{code}");
        // TypeScript: annotations stay where they are, and are stripped.
        let ts = "export const k: (r: any) => Promise<void> = async <T,>(r: T): Promise<void> => {}\n";
        let code = transpile(Path::new("index.ts"), ts).expect("ok").code;
        assert!(code.contains("export const k = __interpose_twin((r) => {}, \"k\");"), "{code}");
    }

    #[test]
    fn strips_types_and_maps_lines() {
        let src = "import type { X } from './x';\ninterface A { a: number }\n\nexport async function f(r: A): Promise<number> {\n  const n: number = r.a as number;\n  return n satisfies number;\n}\nenum E { A = 1 }\nexport const e = E.A;\n";
        let t = transpile(Path::new("index.ts"), src).expect("ok");
        assert!(!t.code.contains("interface") && !t.code.contains(": number"), "{}", t.code);
        // `f` never awaits: it runs as its synchronous twin (see `sync_twins`).
        assert!(t.code.contains("function f__interpose_sync(r)"), "{}", t.code);
        assert!(t.code.contains("export async function f(...args)"), "{}", t.code);
        let gen_line = t.code.lines().position(|l| l.contains("const n")).expect("line");
        assert_eq!(t.line_map[gen_line], 5, "{:?}\n{}", t.line_map, t.code);
    }

    #[test]
    fn finds_commonjs_and_its_literal_requires() {
        let cjs = |src: &str| transpile(Path::new("a.js"), src).expect("ok").commonjs;
        assert_eq!(
            cjs("const a = require('./a'), b = require(\"@ones-op/fetch\"); require(name); require('./a')\n"),
            Some(vec!["./a".to_string(), "@ones-op/fetch".to_string()])
        );
        assert_eq!(cjs("module.exports = { f() {} }\n"), Some(vec![]));
        // ES modules, and scripts that use nothing of CommonJS, stay as they are.
        assert_eq!(cjs("import x from './x'\nexport const y = require\n"), None);
        assert_eq!(cjs("globalThis.x = 1\n"), None);
        assert_eq!(transpile(Path::new("a.mjs"), "exports.f = 1\n").expect("ok").commonjs, None);
        assert_eq!(transpile(Path::new("a.ts"), "exports.f = 1\n").expect("ok").commonjs, None);
    }

    #[test]
    fn decorators_follow_the_projects_tsconfig() {
        let src = "function log(t: any, k: string, d: PropertyDescriptor) { return d }\nexport class C {\n  @log hello(): string { return 'hi' }\n}\n";
        let err = transpile(Path::new("a.ts"), src).expect_err("no experimentalDecorators");
        assert_eq!((err[0].line, err[0].column), (3, 3), "{err:?}");
        assert!(err[0].message.contains("\"experimentalDecorators\": true"), "{err:?}");
        let on = TsConfig::parse(
            "{\n  // comments and trailing commas, as tsc allows\n  \"compilerOptions\": { \"target\": \"es2022\", /* x */ \"experimentalDecorators\": true, },\n}\n",
        )
        .expect("tsconfig");
        assert_eq!(on, TsConfig { experimental_decorators: true, emit_decorator_metadata: false });
        let t = transpile_with(Path::new("a.ts"), src, on).expect("legacy decorators");
        assert!(!t.code.contains("@log"), "{}", t.code);
        assert_eq!(TsConfig::parse("{}"), Ok(TsConfig::default()));
        assert!(TsConfig::parse("{ \"compilerOptions\": ").expect_err("bad").starts_with("1:"));
        assert!(TsConfig::parse("[]").is_err());
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = transpile(Path::new("index.ts"), "export function f( {\n").expect_err("bad");
        assert!(err[0].line <= 2, "{:?}", err[0]);
        let err = transpile(Path::new("a.js"), "let x = ;\n").expect_err("bad");
        assert_eq!((err[0].line, err[0].column), (1, 9));
    }

    #[test]
    fn refuses_what_node_refuses_before_running() {
        // QuickJS lets a function declaration shadow an import of the same
        // name; Node (and tsc) refuse the module.
        for path in ["index.js", "index.ts"] {
            let src = "import { rules } from './util';\nexport const n = rules.length;\nexport function rules() {}\n";
            let err = transpile(Path::new(path), src).expect_err(path);
            assert!(err[0].message.contains("rules"), "{path}: {err:?}");
            assert_eq!(err[0].line, 3, "{path}: {err:?}");
        }
        let err = transpile(Path::new("a.js"), "export function f() {}\nexport function f() {}\n").expect_err("twice");
        assert!(err[0].message.contains('f'), "{err:?}");
        // A type may share an imported name (tsc merges them).
        let ok = "import { X, type Y } from './x';\ninterface X { a: number }\nexport function Y() {}\nexport const x: X = { a: 1 };\n";
        assert!(transpile(Path::new("a.ts"), ok).is_ok());
        // CommonJS scripts are not modules: the same names are fine there.
        assert!(transpile(Path::new("a.js"), "function f() {}\nfunction f() {}\nmodule.exports = f;\n").is_ok());
    }
}
