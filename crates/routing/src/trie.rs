//! A segment trie: static segments first, then one parameter child, with
//! backtracking so `/users/me` and `/users/:id` both match what they should.

use interpose_manifest::Segment;

#[derive(Debug)]
pub(crate) struct Trie {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    /// foldhash: seeded, so a client's segments cannot be chosen to
    /// collide, and several times cheaper than SipHash on short keys (a
    /// lookup hashes every segment of the path).
    statics: foldhash::HashMap<String, Node>,
    param: Option<Box<Node>>,
    leaf: Option<usize>,
}

impl Trie {
    pub(crate) fn new() -> Trie {
        Trie { root: Node::default() }
    }

    /// Insert a pattern; returns the existing leaf when the shape is already present.
    pub(crate) fn insert(&mut self, segments: &[Segment], value: usize) -> usize {
        let mut node = &mut self.root;
        for seg in segments {
            node = match seg {
                Segment::Static(s) => node.statics.entry(s.clone()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_with(Default::default),
            };
        }
        *node.leaf.get_or_insert(value)
    }

    /// Find the leaf for `path` segments; parameter values are pushed to `values`.
    pub(crate) fn find<'p>(&self, path: &[&'p str], values: &mut Vec<&'p str>) -> Option<usize> {
        find(&self.root, path, values)
    }
}

fn find<'p>(node: &Node, path: &[&'p str], values: &mut Vec<&'p str>) -> Option<usize> {
    let Some((first, rest)) = path.split_first() else {
        return node.leaf;
    };
    if let Some(child) = node.statics.get(*first) {
        if let Some(leaf) = find(child, rest, values) {
            return Some(leaf);
        }
    }
    if let Some(child) = &node.param {
        values.push(first);
        if let Some(leaf) = find(child, rest, values) {
            return Some(leaf);
        }
        values.pop();
    }
    None
}
