//! TypeScript → JavaScript in-process with oxc: types stripped, nothing else
//! lowered (QuickJS runs modern JS). Done once per file when a plugin loads.

use std::path::Path;

use oxc::allocator::Allocator;
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::parser::Parser;
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
    /// in order. [`crate::project`] wraps such a file into a module.
    pub commonjs: Option<Vec<String>>,
}

/// A syntax or type-stripping error at a place in the source.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Strip TypeScript from `source` (named `path`); plain `.js`/`.mjs` is only
/// syntax-checked and kept byte for byte, so its line numbers stay true.
pub fn transpile(path: &Path, source: &str) -> Result<Transpiled, Vec<SyntaxError>> {
    let is_ts = matches!(path.extension().and_then(|e| e.to_str()), Some("ts" | "mts" | "cts"));
    let source_type = if is_ts { SourceType::ts() } else { SourceType::mjs() };
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if !parsed.diagnostics.is_empty() {
        return Err(parsed.diagnostics.iter().map(|e| located(source, e)).collect());
    }
    if !is_ts {
        // `.mjs` is an ES module by name, as in Node.
        let may_be_commonjs = !parsed.module_record.has_module_syntax && path.extension().is_none_or(|e| e != "mjs");
        let commonjs = may_be_commonjs.then(|| commonjs_requires(&parsed.program)).flatten();
        return Ok(Transpiled { code: source.to_string(), line_map: Vec::new(), commonjs });
    }
    let mut program = parsed.program;
    let semantic = SemanticBuilder::new().with_excess_capacity(2.0).with_enum_eval(true).build(&program);
    if !semantic.diagnostics.is_empty() {
        return Err(semantic.diagnostics.iter().map(|e| located(source, e)).collect());
    }
    let scoping = semantic.semantic.into_scoping();
    let options = TransformOptions::default();
    let ret = Transformer::new(&allocator, path, &options).build_with_scoping(scoping, &mut program);
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
    Ok(Transpiled { code: out.code, line_map, commonjs: None })
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

fn located(source: &str, e: &oxc::diagnostics::OxcDiagnostic) -> SyntaxError {
    let offset = (e.labels.first().map(|l| l.offset()).unwrap_or(0) as usize).min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    let mut message = e.message.to_string();
    if let Some(help) = &e.help {
        message.push_str(&format!(" ({help})"));
    }
    SyntaxError { line, column, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_types_and_maps_lines() {
        let src = "import type { X } from './x';\ninterface A { a: number }\n\nexport async function f(r: A): Promise<number> {\n  const n: number = r.a as number;\n  return n satisfies number;\n}\nenum E { A = 1 }\nexport const e = E.A;\n";
        let t = transpile(Path::new("index.ts"), src).expect("ok");
        assert!(!t.code.contains("interface") && !t.code.contains(": number"), "{}", t.code);
        assert!(t.code.contains("export async function f(r)"), "{}", t.code);
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
    fn reports_syntax_errors_with_position() {
        let err = transpile(Path::new("index.ts"), "export function f( {\n").expect_err("bad");
        assert!(err[0].line <= 2, "{:?}", err[0]);
        let err = transpile(Path::new("a.js"), "let x = ;\n").expect_err("bad");
        assert_eq!((err[0].line, err[0].column), (1, 9));
    }
}
