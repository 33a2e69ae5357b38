//! The intermediate representation of an `#[actor]` impl block.
//!
//! Two layers live here:
//!
//! * the *parsed* layer ([`ParsedActor`], [`ParsedMethod`], ...) is a lossless
//!   lowering of whatever the user wrote, valid or not, with the spans needed
//!   to point diagnostics at the offending tokens. Building it never fails.
//! * the *checked* layer ([`Actor`], [`Message`], [`Hook`], ...) is what
//!   `validate::check` produces once every rule holds. It is independent of
//!   the kind of expansion: the local expansion (`expand::local`) and the
//!   remote one (`expand_remote::remote`) are both written against it.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use quote::quote_spanned;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, Meta, Pat, PathArguments, ReturnType, Token, Type};

// ---------------------------------------------------------------------------
// Checked layer
// ---------------------------------------------------------------------------

/// A validated actor: everything the code generators need.
pub(crate) struct Actor {
    /// The actor type as written after `impl` (e.g. `Counter`, `crate::a::Counter`).
    pub(crate) self_ty: Type,
    /// The last segment of the actor type's path (`Counter`).
    pub(crate) name: syn::Ident,
    /// Name of the generated message enum (`CounterMsg`).
    pub(crate) msg_enum: syn::Ident,
    /// Name of the generated typed handle (`CounterRef`).
    pub(crate) ref_struct: syn::Ident,
    /// The `#[msg]` methods, in source order.
    pub(crate) messages: Vec<Message>,
    /// The lifecycle hooks the user defined, in source order.
    pub(crate) hooks: Vec<Hook>,
    /// `#[actor(remote)]`: also generate the wire contract and `XRemoteRef`.
    pub(crate) remote: bool,
}

/// One `#[msg]` method.
pub(crate) struct Message {
    /// The method name (`get_value`).
    pub(crate) method: syn::Ident,
    /// The message enum variant (`GetValue`).
    pub(crate) variant: syn::Ident,
    /// `async fn`?
    pub(crate) is_async: bool,
    /// Whether the method takes `&mut Context` right after `&mut self`.
    pub(crate) takes_ctx: bool,
    /// The message arguments (after the optional context).
    pub(crate) args: Vec<Arg>,
    /// `Some(T)` for an ask replying with `T`; `None` for a tell.
    pub(crate) reply: Option<Type>,
    /// The method's doc attributes, copied onto generated items.
    pub(crate) docs: Vec<Attribute>,
    /// The method's `#[cfg]` attributes, copied onto everything generated for it.
    pub(crate) cfgs: Vec<Attribute>,
}

impl Message {
    /// `true` for an ask (the method returns a value).
    pub(crate) fn is_ask(&self) -> bool {
        self.reply.is_some()
    }
}

/// One message argument: a plain name and an owned type.
pub(crate) struct Arg {
    /// The argument name, without `mut`.
    pub(crate) name: syn::Ident,
    /// The argument type, with `Self` replaced by the actor type.
    pub(crate) ty: Type,
}

/// The lifecycle hooks of `axactor::Actor`, recognised by method name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookKind {
    /// `on_start(&mut self, [ctx])`
    Start,
    /// `on_stop(&mut self, [ctx], reason: &ExitReason)`
    Stop,
    /// `on_exit(&mut self, [ctx], from: Pid, reason: ExitReason)`
    Exit,
    /// `on_down(&mut self, [ctx], id: MonitorId, pid: Pid, reason: ExitReason)`
    Down,
}

impl HookKind {
    /// The hook a method name denotes, if any.
    pub(crate) fn from_name(name: &str) -> Option<HookKind> {
        match name {
            "on_start" => Some(HookKind::Start),
            "on_stop" => Some(HookKind::Stop),
            "on_exit" => Some(HookKind::Exit),
            "on_down" => Some(HookKind::Down),
            _ => None,
        }
    }

    /// The method name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HookKind::Start => "on_start",
            HookKind::Stop => "on_stop",
            HookKind::Exit => "on_exit",
            HookKind::Down => "on_down",
        }
    }

    /// The arguments after the optional context: `(name, type as written,
    /// what the type must be)`. The last element of the type description is
    /// the type's path ident; `by_ref` is whether it is passed as `&T`.
    pub(crate) fn params(self) -> &'static [HookParam] {
        const STOP: &[HookParam] = &[HookParam { name: "reason", ty: "ExitReason", by_ref: true }];
        const EXIT: &[HookParam] = &[
            HookParam { name: "from", ty: "Pid", by_ref: false },
            HookParam { name: "reason", ty: "ExitReason", by_ref: false },
        ];
        const DOWN: &[HookParam] = &[
            HookParam { name: "id", ty: "MonitorId", by_ref: false },
            HookParam { name: "pid", ty: "Pid", by_ref: false },
            HookParam { name: "reason", ty: "ExitReason", by_ref: false },
        ];
        match self {
            HookKind::Start => &[],
            HookKind::Stop => STOP,
            HookKind::Exit => EXIT,
            HookKind::Down => DOWN,
        }
    }

    /// The accepted signature, for diagnostics.
    pub(crate) fn signature(self) -> String {
        let mut sig = format!("fn {}(&mut self, [ctx: &mut Context]", self.name());
        for p in self.params() {
            sig.extend([", ", p.name, ": ", if p.by_ref { "&" } else { "" }, p.ty]);
        }
        sig.push(')');
        sig
    }
}

/// One expected hook parameter.
pub(crate) struct HookParam {
    /// Conventional name (only used in diagnostics).
    pub(crate) name: &'static str,
    /// The type's name (`ExitReason`, `Pid`, `MonitorId`).
    pub(crate) ty: &'static str,
    /// Passed as a shared reference.
    pub(crate) by_ref: bool,
}

/// A validated lifecycle hook.
pub(crate) struct Hook {
    /// Which hook.
    pub(crate) kind: HookKind,
    /// The user's method name (same as `kind.name()`, but with the user's span).
    pub(crate) method: syn::Ident,
    /// `async fn`?
    pub(crate) is_async: bool,
    /// Whether the method takes `&mut Context` right after `&mut self`.
    pub(crate) takes_ctx: bool,
    /// The method's `#[cfg]` attributes.
    pub(crate) cfgs: Vec<Attribute>,
}

// ---------------------------------------------------------------------------
// Parsed layer
// ---------------------------------------------------------------------------

/// The arguments of `#[actor(...)]`.
#[derive(Default)]
pub(crate) struct ActorArgs {
    /// `remote` was given (the word, the first time).
    pub(crate) remote: Option<TokenStream>,
    /// `remote` given again after the first time.
    pub(crate) duplicate: Vec<TokenStream>,
    /// Arguments that are not understood.
    pub(crate) unknown: Vec<TokenStream>,
    /// The argument list did not even parse.
    pub(crate) malformed: Option<syn::Error>,
}

impl ActorArgs {
    /// Parses the tokens inside `#[actor(...)]`. Never fails: problems are
    /// recorded for `validate` to report.
    pub(crate) fn parse(tokens: TokenStream) -> ActorArgs {
        let mut args = ActorArgs::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens) {
            Ok(m) => m,
            Err(e) => {
                args.malformed = Some(e);
                return args;
            }
        };
        for meta in metas {
            match &meta {
                Meta::Path(p) if p.is_ident("remote") => {
                    if args.remote.is_some() {
                        args.duplicate.push(p.to_token_stream());
                    } else {
                        args.remote = Some(p.to_token_stream());
                    }
                }
                other => args.unknown.push(other.to_token_stream()),
            }
        }
        args
    }
}

/// Everything about the impl block, valid or not.
pub(crate) struct ParsedActor {
    /// `#[actor(...)]` arguments.
    pub(crate) args: ActorArgs,
    /// The trait path, for `impl Trait for X`.
    pub(crate) trait_path: Option<syn::Path>,
    /// The impl's generics, if any were written (params or where-clause).
    pub(crate) generics: Option<TokenStream>,
    /// The type after `impl` (with `for`, the type after it).
    pub(crate) self_ty: Type,
    /// The type's name if `self_ty` is a plain path without generic arguments.
    pub(crate) name: Option<syn::Ident>,
    /// Generic arguments on the self type (`impl Foo<u8>`), if any.
    pub(crate) self_ty_args: Option<TokenStream>,
    /// Methods of the impl block, in order.
    pub(crate) methods: Vec<ParsedMethod>,
    /// `#[msg]` attributes found on impl items that are not methods.
    pub(crate) misplaced_msg: Vec<TokenStream>,
}

/// A `#[msg]` attribute as written.
pub(crate) struct MsgAttr {
    /// The whole attribute, for diagnostics.
    pub(crate) attr: TokenStream,
    /// The arguments, if the attribute had any (`#[msg(...)]`).
    pub(crate) args: Option<TokenStream>,
}

/// How the method takes `self`.
pub(crate) enum Receiver {
    /// `&mut self` (optionally with a lifetime).
    RefMut,
    /// `&self`.
    Ref(TokenStream),
    /// `self` / `mut self`.
    Value(TokenStream),
    /// `self: Type`.
    Typed(TokenStream),
    /// No receiver at all (an associated function).
    Missing,
}

/// The pattern of a non-receiver argument.
pub(crate) enum ArgPat {
    /// `name` or `mut name` (the ident, without `mut`).
    Ident(syn::Ident),
    /// Anything else: tuple, struct, wildcard, `ref x`, `x @ ..`.
    Other(TokenStream),
}

/// Whether an argument's type is the runtime's `Context`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CtxKind {
    /// Not a `Context` at all.
    No,
    /// `&mut Context`.
    RefMut,
    /// `Context`, `&Context`, ... (wrong form).
    Wrong,
}

/// One non-receiver argument.
pub(crate) struct ParsedArg {
    /// The pattern.
    pub(crate) pat: ArgPat,
    /// The type, with `Self` replaced by the actor type.
    pub(crate) ty: Type,
    /// The whole argument (`pat: ty`), for diagnostics.
    pub(crate) tokens: TokenStream,
    /// Is it a `Context`?
    pub(crate) ctx: CtxKind,
}

/// One method of the impl block.
pub(crate) struct ParsedMethod {
    /// The method name.
    pub(crate) ident: syn::Ident,
    /// The `#[msg]` attribute, if present (the first one).
    pub(crate) msg: Option<MsgAttr>,
    /// Extra `#[msg]` attributes after the first.
    pub(crate) duplicate_msg: Vec<TokenStream>,
    /// `async fn`?
    pub(crate) is_async: bool,
    /// `unsafe fn`: the `unsafe` keyword.
    pub(crate) unsafety: Option<TokenStream>,
    /// Generic parameters or where-clause, if any.
    pub(crate) generics: Option<TokenStream>,
    /// How `self` is taken.
    pub(crate) receiver: Receiver,
    /// Arguments after the receiver.
    pub(crate) args: Vec<ParsedArg>,
    /// `None` for `()` or no return type; otherwise the type (with `Self` replaced).
    pub(crate) output: Option<Type>,
    /// Doc attributes.
    pub(crate) docs: Vec<Attribute>,
    /// `#[cfg]` attributes.
    pub(crate) cfgs: Vec<Attribute>,
}

/// A single token carrying `span`, to point a diagnostic at a bare span.
pub(crate) fn spot(span: Span) -> TokenStream {
    quote_spanned!(span=> _)
}

/// `true` for `#[msg]` and `#[some::path::msg]`.
fn is_msg_attr(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "msg")
}

/// Lowers the impl block. Also strips every `#[msg]` attribute from `item`
/// (so the impl can be re-emitted as plain Rust).
pub(crate) fn lower(args: ActorArgs, item: &mut ItemImpl) -> ParsedActor {
    let self_ty = (*item.self_ty).clone();
    let (name, self_ty_args) = type_name(&self_ty);
    let generics = generics_tokens(&item.generics);
    let mut parsed = ParsedActor {
        args,
        trait_path: item.trait_.as_ref().map(|(_, path, _)| path.clone()),
        generics,
        self_ty,
        name,
        self_ty_args,
        methods: Vec::new(),
        misplaced_msg: Vec::new(),
    };
    for impl_item in &mut item.items {
        match impl_item {
            ImplItem::Fn(f) => {
                let method = lower_method(f, &parsed.self_ty);
                f.attrs.retain(|a| !is_msg_attr(a));
                parsed.methods.push(method);
            }
            ImplItem::Const(c) => strip_misplaced(&mut c.attrs, &mut parsed.misplaced_msg),
            ImplItem::Type(t) => strip_misplaced(&mut t.attrs, &mut parsed.misplaced_msg),
            ImplItem::Macro(m) => strip_misplaced(&mut m.attrs, &mut parsed.misplaced_msg),
            _ => {}
        }
    }
    parsed
}

/// Removes `#[msg]` from a non-method item, recording where it was.
fn strip_misplaced(attrs: &mut Vec<Attribute>, found: &mut Vec<TokenStream>) {
    attrs.retain(|a| {
        let msg = is_msg_attr(a);
        if msg {
            found.push(a.to_token_stream());
        }
        !msg
    });
}

/// The generic parameters and where-clause as written, if there are any.
fn generics_tokens(generics: &syn::Generics) -> Option<TokenStream> {
    if generics.params.is_empty() && generics.where_clause.is_none() {
        return None;
    }
    // `Generics` prints only its parameters; the where-clause is separate.
    let mut tokens = generics.to_token_stream();
    generics.where_clause.to_tokens(&mut tokens);
    Some(tokens)
}

/// The name of a plain path type, and its generic arguments if it has any.
fn type_name(ty: &Type) -> (Option<syn::Ident>, Option<TokenStream>) {
    match ty {
        Type::Path(tp) if tp.qself.is_none() => match tp.path.segments.last() {
            Some(seg) => {
                let args = match &seg.arguments {
                    PathArguments::None => None,
                    other => Some(other.to_token_stream()),
                };
                (Some(seg.ident.clone()), args)
            }
            None => (None, None),
        },
        Type::Group(g) => type_name(&g.elem),
        Type::Paren(p) => type_name(&p.elem),
        _ => (None, None),
    }
}

fn lower_method(f: &ImplItemFn, self_ty: &Type) -> ParsedMethod {
    let sig = &f.sig;
    let mut msg = None;
    let mut duplicate_msg = Vec::new();
    for attr in f.attrs.iter().filter(|a| is_msg_attr(a)) {
        if msg.is_some() {
            duplicate_msg.push(attr.to_token_stream());
            continue;
        }
        let args = match &attr.meta {
            Meta::Path(_) => None,
            Meta::List(l) => Some(spot(l.delimiter.span().join())),
            Meta::NameValue(nv) => Some(nv.value.to_token_stream()),
        };
        msg = Some(MsgAttr { attr: attr.to_token_stream(), args });
    }
    let generics = generics_tokens(&sig.generics);
    let mut receiver = Receiver::Missing;
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                receiver = if r.colon_token.is_some() {
                    Receiver::Typed(r.to_token_stream())
                } else {
                    match &r.reference {
                        Some(_) if r.mutability.is_some() => Receiver::RefMut,
                        Some(_) => Receiver::Ref(r.to_token_stream()),
                        None => Receiver::Value(r.to_token_stream()),
                    }
                };
            }
            FnArg::Typed(pt) => {
                let pat = match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => ArgPat::Ident(pi.ident.clone()),
                    other => ArgPat::Other(other.to_token_stream()),
                };
                args.push(ParsedArg {
                    pat,
                    ctx: ctx_kind(&pt.ty),
                    ty: replace_self(&pt.ty, self_ty),
                    tokens: pt.to_token_stream(),
                });
            }
        }
    }
    let output = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Tuple(t) if t.elems.is_empty() => None,
            ty => Some(replace_self(ty, self_ty)),
        },
    };
    ParsedMethod {
        ident: sig.ident.clone(),
        msg,
        duplicate_msg,
        is_async: sig.asyncness.is_some(),
        unsafety: sig.unsafety.map(|u| u.to_token_stream()),
        generics,
        receiver,
        args,
        output,
        docs: f.attrs.iter().filter(|a| a.path().is_ident("doc")).cloned().collect(),
        cfgs: f.attrs.iter().filter(|a| a.path().is_ident("cfg")).cloned().collect(),
    }
}

/// `true` if `ty` names `Context` (any path ending in `Context`, no generics).
pub(crate) fn is_named(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(tp) if tp.qself.is_none() => {
            tp.path.segments.last().is_some_and(|s| s.ident == name && matches!(s.arguments, PathArguments::None))
        }
        Type::Group(g) => is_named(&g.elem, name),
        Type::Paren(p) => is_named(&p.elem, name),
        _ => false,
    }
}

fn ctx_kind(ty: &Type) -> CtxKind {
    match ty {
        Type::Reference(r) if is_named(&r.elem, "Context") => {
            if r.mutability.is_some() {
                CtxKind::RefMut
            } else {
                CtxKind::Wrong
            }
        }
        Type::Group(g) => ctx_kind(&g.elem),
        Type::Paren(p) => ctx_kind(&p.elem),
        ty if is_named(ty, "Context") => CtxKind::Wrong,
        _ => CtxKind::No,
    }
}

/// Replaces every `Self` in `ty` with the actor type, so the type means the
/// same thing inside the generated enum and handle as in the method.
fn replace_self(ty: &Type, self_ty: &Type) -> Type {
    let replaced = replace_self_tokens(ty.to_token_stream(), self_ty);
    syn::parse2(replaced).unwrap_or_else(|_| ty.clone())
}

fn replace_self_tokens(tokens: TokenStream, self_ty: &Type) -> TokenStream {
    tokens
        .into_iter()
        .flat_map(|tt| -> TokenStream {
            match tt {
                TokenTree::Ident(id) if id == "Self" => {
                    // The actor type is a plain path (validated), so `Self::Assoc` stays valid too.
                    let mut ty = self_ty.clone();
                    set_span(&mut ty, id.span());
                    ty.into_token_stream()
                }
                TokenTree::Group(g) => {
                    let mut group = proc_macro2::Group::new(g.delimiter(), replace_self_tokens(g.stream(), self_ty));
                    group.set_span(g.span());
                    TokenTree::Group(group).into()
                }
                other => other.into(),
            }
        })
        .collect()
}

/// Sets the span of a small type's tokens (used for `Self` replacement, so
/// errors point at the user's `Self`).
fn set_span(ty: &mut Type, span: Span) {
    let respanned: TokenStream = ty
        .to_token_stream()
        .into_iter()
        .map(|mut tt| {
            tt.set_span(span);
            tt
        })
        .collect();
    if let Ok(t) = syn::parse2(respanned) {
        *ty = t;
    }
}

/// The method name as the user reads it (without `r#`).
pub(crate) fn plain_name(ident: &syn::Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(s: &str) -> Type {
        syn::parse_str(s).expect("type")
    }

    #[test]
    fn self_is_replaced_by_the_actor_type() {
        let actor = ty("crate::a::Counter");
        let replaced = replace_self(&ty("Vec<(Self, Option<Self>)>"), &actor);
        assert_eq!(
            replaced.to_token_stream().to_string(),
            ty("Vec<(crate::a::Counter, Option<crate::a::Counter>)>").to_token_stream().to_string()
        );
    }

    #[test]
    fn context_parameters_are_recognised() {
        assert!(ctx_kind(&ty("&mut Context")) == CtxKind::RefMut);
        assert!(ctx_kind(&ty("&mut ::axactor::Context")) == CtxKind::RefMut);
        assert!(ctx_kind(&ty("&Context")) == CtxKind::Wrong);
        assert!(ctx_kind(&ty("Context")) == CtxKind::Wrong);
        assert!(ctx_kind(&ty("&mut Contexts")) == CtxKind::No);
    }
}
