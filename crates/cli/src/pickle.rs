//! A reader for the one pickle `ochre import --from-chroma` needs: Chroma's HNSW id map
//! (`index_metadata.pickle`), a dict as chromadb 1.x writes it (serde-pickle, protocol 3) or a
//! `PersistentData` object whose state is that dict (chromadb 0.x, Python's pickle).
//!
//! Written here rather than taken from a general pickle library because the bytes come from a
//! directory the user points at and must never bring the importer down: a general unpickler
//! copies a memoised container at every reference to it (a few hundred bytes can ask for
//! gigabytes) and builds nested values recursively (a deep nesting overflows the stack). This
//! one runs Python's pickle machine for the data opcodes only, over a byte slice; containers may
//! nest at most [`MAX_DEPTH`] deep, only scalars can be memo references, and nothing is ever
//! imported or called (a class reference is kept as its name).

use std::collections::HashMap;

/// How deep containers may nest (Chroma's id map nests three deep).
pub const MAX_DEPTH: usize = 32;

/// A value of the pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A class reference (`module`, `name`): never resolved.
    Global(String, String),
    /// An instance: its class and the state `BUILD` gave it.
    Object(Box<Value>, Box<Value>),
}

/// Why a pickle was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PickleError {
    #[error("the pickle ends early (at byte {0})")]
    Truncated(usize),
    #[error("unsupported pickle opcode {opcode:#04x} at byte {at}")]
    Opcode { opcode: u8, at: usize },
    #[error("malformed pickle at byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
    #[error("the pickle nests containers deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error(
        "the pickle refers twice to a container (at byte {0}), which this reader does not follow"
    )]
    SharedContainer(usize),
    #[error("an integer in the pickle does not fit in 64 bits (at byte {0})")]
    BigInt(usize),
}

/// A stack entry: a value and how deep its containers nest, or a mark.
enum Slot {
    Mark,
    Item(Value, usize),
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Slot>,
    /// Memo entries: scalars only; `None` marks a memoised container.
    memo: HashMap<u64, Option<Value>>,
}

fn depth_of(v: &Value) -> usize {
    match v {
        Value::List(_) | Value::Tuple(_) | Value::Dict(_) | Value::Object(..) => 1,
        _ => 0,
    }
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(PickleError::Truncated(self.bytes.len()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    fn len(&mut self, n: usize) -> Result<usize, PickleError> {
        let at = self.at;
        let v = self.le(n)?;
        usize::try_from(v).map_err(|_| PickleError::Truncated(at))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let at = self.at;
        let rest = &self.bytes[self.at..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated(self.bytes.len()))?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| PickleError::Malformed {
            at,
            what: "a class name is not UTF-8",
        })?;
        self.at += end + 1;
        Ok(s.to_owned())
    }

    fn text(&mut self, n: usize) -> Result<Value, PickleError> {
        let at = self.at;
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| PickleError::Malformed {
            at,
            what: "a string is not UTF-8",
        })?;
        Ok(Value::Str(s.to_owned()))
    }

    fn push(&mut self, v: Value) {
        let d = depth_of(&v);
        self.stack.push(Slot::Item(v, d));
    }

    fn pop(&mut self) -> Result<(Value, usize), PickleError> {
        match self.stack.pop() {
            Some(Slot::Item(v, d)) => Ok((v, d)),
            Some(Slot::Mark) | None => Err(PickleError::Malformed {
                at: self.at,
                what: "a value was expected on the stack",
            }),
        }
    }

    /// The values above the topmost mark (which is removed), in order.
    fn pop_to_mark(&mut self) -> Result<Vec<(Value, usize)>, PickleError> {
        let mut out = Vec::new();
        loop {
            match self.stack.pop() {
                Some(Slot::Mark) => {
                    out.reverse();
                    return Ok(out);
                }
                Some(Slot::Item(v, d)) => out.push((v, d)),
                None => {
                    return Err(PickleError::Malformed {
                        at: self.at,
                        what: "no mark on the stack",
                    })
                }
            }
        }
    }

    /// Adds `items` to the container on top of the stack (dict: key/value pairs).
    fn extend_top(&mut self, items: Vec<(Value, usize)>) -> Result<(), PickleError> {
        let at = self.at;
        let Some(Slot::Item(top, depth)) = self.stack.last_mut() else {
            return Err(PickleError::Malformed {
                at,
                what: "no container to add to",
            });
        };
        let deepest = items.iter().map(|(_, d)| *d).max().unwrap_or(0);
        *depth = (*depth).max(deepest + 1);
        if *depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        match top {
            Value::List(l) => l.extend(items.into_iter().map(|(v, _)| v)),
            Value::Dict(d) => {
                if !items.len().is_multiple_of(2) {
                    return Err(PickleError::Malformed {
                        at,
                        what: "a dict item without its value",
                    });
                }
                let mut it = items.into_iter().map(|(v, _)| v);
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            _ => {
                return Err(PickleError::Malformed {
                    at,
                    what: "items added to something that is not a list or a dict",
                })
            }
        }
        Ok(())
    }

    fn tuple(&mut self, items: Vec<(Value, usize)>) -> Result<(), PickleError> {
        let depth = items.iter().map(|(_, d)| *d).max().unwrap_or(0) + 1;
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        self.stack.push(Slot::Item(
            Value::Tuple(items.into_iter().map(|(v, _)| v).collect()),
            depth,
        ));
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let at = self.at;
        let Some(Slot::Item(v, _)) = self.stack.last() else {
            return Err(PickleError::Malformed {
                at,
                what: "nothing to memoise",
            });
        };
        let entry = match v {
            Value::List(_)
            | Value::Tuple(_)
            | Value::Dict(_)
            | Value::Object(..)
            | Value::Global(..) => None,
            scalar => Some(scalar.clone()),
        };
        self.memo.insert(key, entry);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(Some(v)) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            Some(None) => Err(PickleError::SharedContainer(self.at)),
            None => Err(PickleError::Malformed {
                at: self.at,
                what: "a memo reference to nothing",
            }),
        }
    }

    fn run(mut self) -> Result<Value, PickleError> {
        loop {
            let at = self.at;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.le(8)?; // FRAME: a length hint
                }
                b'.' => {
                    let (v, _) = self.pop()?;
                    return Ok(v);
                }
                b'(' => self.stack.push(Slot::Mark),
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.le(4)? as u32 as i32;
                    self.push(Value::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.le(2)?;
                    self.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        usize::from(self.u8()?)
                    } else {
                        self.len(4)?
                    };
                    if n > 8 {
                        return Err(PickleError::BigInt(at));
                    }
                    let b = self.take(n)?;
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= i64::from(x) << (8 * i);
                    }
                    // Two's complement of n bytes: sign-extend.
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    #[allow(clippy::big_endian_bytes, reason = "pickle's BINFLOAT is big-endian")]
                    self.push(Value::Float(f64::from_be_bytes(a)));
                }
                b'X' => {
                    let n = self.len(4)?;
                    let v = self.text(n)?;
                    self.stack.push(Slot::Item(v, 0));
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.text(n)?;
                    self.stack.push(Slot::Item(v, 0));
                }
                0x8d => {
                    let n = self.len(8)?;
                    let v = self.text(n)?;
                    self.stack.push(Slot::Item(v, 0));
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => usize::from(self.u8()?),
                        b'B' => self.len(4)?,
                        _ => self.len(8)?,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b')' => self.push(Value::Tuple(Vec::new())),
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_top(vec![k, v])?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(vec![v])?;
                }
                b'u' | b'e' => {
                    let items = self.pop_to_mark()?;
                    self.extend_top(items)?;
                }
                b't' => {
                    let items = self.pop_to_mark()?;
                    self.tuple(items)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.tuple(items)?;
                }
                b'q' => {
                    let k = u64::from(self.u8()?);
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.le(4)?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = u64::from(self.u8()?);
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.le(4)?;
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module, name));
                }
                0x93 => {
                    let (name, _) = self.pop()?;
                    let (module, _) = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.push(Value::Global(m, n)),
                        _ => {
                            return Err(PickleError::Malformed {
                                at,
                                what: "a class name is not a string",
                            })
                        }
                    }
                }
                // NEWOBJ (class, args) and REDUCE (callable, args): an instance with no
                // state yet. Nothing is called.
                0x81 | b'R' => {
                    let _args = self.pop()?;
                    let (class, _) = self.pop()?;
                    self.stack.push(Slot::Item(
                        Value::Object(Box::new(class), Box::new(Value::None)),
                        1,
                    ));
                }
                b'b' => {
                    let (state, d) = self.pop()?;
                    let (obj, od) = self.pop()?;
                    let depth = od.max(d + 1);
                    if depth > MAX_DEPTH {
                        return Err(PickleError::TooDeep);
                    }
                    let Value::Object(class, _) = obj else {
                        return Err(PickleError::Malformed {
                            at,
                            what: "BUILD on something that is not an instance",
                        });
                    };
                    self.stack
                        .push(Slot::Item(Value::Object(class, Box::new(state)), depth));
                }
                other => return Err(PickleError::Opcode { opcode: other, at }),
            }
        }
    }
}

/// Reads a pickle.
///
/// # Errors
/// [`PickleError`] for anything but a well-formed pickle of plain data this reader supports.
pub fn parse(bytes: &[u8]) -> Result<Value, PickleError> {
    Machine {
        bytes,
        at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    }
    .run()
}

impl Value {
    /// The value of a string key in a dict (or in an instance's state dict).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                _ => None,
            }),
            Value::Object(_, state) => state.get(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn labels(v: &Value) -> Vec<(String, i64)> {
        let Some(Value::Dict(items)) = v.get("id_to_label") else {
            panic!("no id_to_label in {v:?}");
        };
        items
            .iter()
            .map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Int(v)) => (k.clone(), *v),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Written by chromadb 1.5.9 (serde-pickle, protocol 3) for a 25-record index (prefix).
    const CHROMA_1X: &str = "80037d28580e00000064696d656e73696f6e616c6974794e5814000000746f74616c5f656c656d656e74735f61646465644a19000000580a0000006d61785f7365715f69644e580b00000069645f746f5f6c6162656c7d2858030000006964394a0a0000005804000000696431344a0f0000007575";

    #[test]
    fn chromas_own_id_maps_read() {
        let mut bytes = hex(CHROMA_1X);
        bytes.push(b'.');
        let v = parse(&bytes).unwrap();
        assert_eq!(labels(&v), vec![("id9".into(), 10), ("id14".into(), 15)]);
        assert_eq!(v.get("total_elements_added"), Some(&Value::Int(25)));
    }

    /// Python's pickle of the same shape, protocols 2 and 5 (memo, frames, LONG1), and of a
    /// chromadb 0.x `PersistentData` object.
    #[test]
    fn pythons_pickles_of_the_map_read() {
        let p2 = "80027d710028580e00000064696d656e73696f6e616c69747971014e5814000000746f74616c5f656c656d656e74735f616464656471024b03580a0000006d61785f7365715f696471034e580b00000069645f746f5f6c6162656c71047d71052858010000006171064b0158010000006271074b025805000000c3bc6ec3af71084d2c01580300000062696771094a70110100580400000068756765710a8a0600000000000175580b0000006c6162656c5f746f5f6964710b7d710c284b0168064b02680775580c00000069645f746f5f7365715f6964710d7d710e752e";
        let p5 = "800595ac000000000000007d94288c0e64696d656e73696f6e616c697479944e8c14746f74616c5f656c656d656e74735f6164646564944b038c0a6d61785f7365715f6964944e8c0b69645f746f5f6c6162656c947d94288c0161944b018c0162944b028c05c3bc6ec3af944d2c018c03626967944a701101008c0468756765948a06000000000001758c0b6c6162656c5f746f5f6964947d94284b0168064b026807758c0c69645f746f5f7365715f6964947d94752e";
        let want: Vec<(String, i64)> = vec![
            ("a".into(), 1),
            ("b".into(), 2),
            ("ünï".into(), 300),
            ("big".into(), 70000),
            ("huge".into(), 1 << 40),
        ];
        for p in [p2, p5] {
            assert_eq!(labels(&parse(&hex(p)).unwrap()), want);
        }
        let obj = "800595b5000000000000008c085f5f6d61696e5f5f948c0e50657273697374656e74446174619493942981947d94288c0e64696d656e73696f6e616c697479944b048c14746f74616c5f656c656d656e74735f6164646564944b028c0a6d61785f7365715f6964944b078c0b69645f746f5f6c6162656c947d94288c0178944b018c0179944b02758c0b6c6162656c5f746f5f6964947d94284b01680a4b02680b758c0c69645f746f5f7365715f6964947d9428680a4b05680b4b077575622e";
        let obj2 = "8002635f5f6d61696e5f5f0a50657273697374656e74446174610a7100298171017d710228580e00000064696d656e73696f6e616c69747971034b045814000000746f74616c5f656c656d656e74735f616464656471044b02580a0000006d61785f7365715f696471054b07580b00000069645f746f5f6c6162656c71067d71072858010000007871084b0158010000007971094b0275580b0000006c6162656c5f746f5f6964710a7d710b284b0168084b02680975580c00000069645f746f5f7365715f6964710c7d710d2868084b0568094b077575622e";
        for p in [obj, obj2] {
            assert_eq!(
                labels(&parse(&hex(p)).unwrap()),
                vec![("x".into(), 1), ("y".into(), 2)]
            );
        }
    }

    #[test]
    fn hostile_pickles_are_refused_not_followed() {
        // 100,000 nested lists.
        let mut deep = vec![0x80, 3];
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend(std::iter::repeat_n(b'a', 99_999));
        deep.push(b'.');
        assert_eq!(parse(&deep), Err(PickleError::TooDeep));
        // A list memoised, then referred to twice: the doubling bomb.
        let bomb = [0x80, 3, b']', b'q', 0, b'h', 0, b'h', 0, b'.'];
        assert!(matches!(parse(&bomb), Err(PickleError::SharedContainer(_))));
        // Cut anywhere.
        let full = hex(CHROMA_1X);
        for cut in 0..full.len() {
            assert!(parse(&full[..cut]).is_err(), "cut at {cut}");
        }
        // Opcodes that would run code or read unknown data.
        assert!(matches!(
            parse(&[0x80, 3, b'i', b'.']),
            Err(PickleError::Opcode { opcode: b'i', .. })
        ));
        // A length beyond the end.
        assert!(matches!(
            parse(&[b'X', 0xff, 0xff, 0xff, 0x7f, b'a']),
            Err(PickleError::Truncated(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Mostly opcodes this reader knows, so the runs go deep.
                    let known = b"().NJKMXq]}ahustbe\x80\x85\x86\x87\x88\x89\x8a\x8c\x94";
                    if state.is_multiple_of(4) {
                        (state >> 8) as u8
                    } else {
                        known[(state >> 8) as usize % known.len()]
                    }
                })
                .collect();
            let _ = parse(&bytes);
        }
    }
}
