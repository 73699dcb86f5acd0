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
        return Ok(Transpiled { code: source.to_string(), line_map: Vec::new() });
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
    Ok(Transpiled { code: out.code, line_map })
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
    fn reports_syntax_errors_with_position() {
        let err = transpile(Path::new("index.ts"), "export function f( {\n").expect_err("bad");
        assert!(err[0].line <= 2, "{:?}", err[0]);
        let err = transpile(Path::new("a.js"), "let x = ;\n").expect_err("bad");
        assert_eq!((err[0].line, err[0].column), (1, 9));
    }
}
