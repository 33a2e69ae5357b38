//! The intermediate representation of an `#[actor]` impl block.
//!
//! Two layers live here:
//!
//! * the *parsed* layer ([`ParsedActor`], [`ParsedMethod`], ...) is a lossless
//!   lowering of whatever the user wrote, valid or not, with the spans needed
//!   to point diagnostics at the offending tokens. Building it never fails.
//! * the *checked* layer ([`Actor`], [`Message`], [`Hook`], ...) is what
//!   `validate::check` produces once every rule holds. It is independent of
//!   the kind of expansion, so the local expansion (`expand::local`) and a
//!   future remote expansion can both be written against it.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, Meta, Pat, PathArguments, ReturnType, Token,
    Type,
};

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
        let mut s = format!("fn {}(&mut self, [ctx: &mut Context]", self.name());
        for p in self.params() {
            let amp = if p.by_ref { "&" } else { "" };
            s.push_str(&format!(", {}: {amp}{}", p.name, p.ty));
        }
        s.push(')');
        s
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
    /// `remote` was given (span of the word).
    pub(crate) remote: Option<Span>,
    /// Arguments that are not understood: their span and how they read.
    pub(crate) unknown: Vec<(Span, String)>,
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
                Meta::Path(p) if p.is_ident("remote") => args.remote = Some(p.span()),
                other => args.unknown.push((other.span(), other.to_token_stream().to_string())),
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
    pub(crate) misplaced_msg: Vec<Span>,
}

/// A `#[msg]` attribute as written.
pub(crate) struct MsgAttr {
    /// Span of the attribute path.
    pub(crate) span: Span,
    /// Span of the arguments, if the attribute had any (`#[msg(...)]`).
    pub(crate) args: Option<Span>,
}

/// How the method takes `self`.
pub(crate) enum Receiver {
    /// `&mut self` (optionally with a lifetime).
    RefMut,
    /// `&self`.
    Ref(Span),
    /// `self` / `mut self`.
    Value(Span),
    /// `self: Type`.
    Typed(Span),
    /// No receiver at all (an associated function).
    Missing,
}

/// The pattern of a non-receiver argument.
pub(crate) enum ArgPat {
    /// `name` or `mut name` (the ident, without `mut`).
    Ident(syn::Ident),
    /// Anything else: tuple, struct, wildcard, `ref x`, `x @ ..`.
    Other(Span),
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
    /// The whole argument's span (`pat: ty`).
    pub(crate) span: Span,
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
    pub(crate) duplicate_msg: Vec<Span>,
    /// `async fn`?
    pub(crate) is_async: bool,
    /// `unsafe fn`: span of `unsafe`.
    pub(crate) unsafety: Option<Span>,
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

/// `true` for `#[msg]` and `#[some::path::msg]`.
fn is_msg_attr(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "msg")
}

/// Lowers the impl block. Also strips every `#[msg]` attribute from `item`
/// (so the impl can be re-emitted as plain Rust).
pub(crate) fn lower(args: ActorArgs, item: &mut ItemImpl) -> ParsedActor {
    let self_ty = (*item.self_ty).clone();
    let (name, self_ty_args) = type_name(&self_ty);
    let generics = if item.generics.params.is_empty() && item.generics.where_clause.is_none() {
        None
    } else {
        Some(item.generics.to_token_stream())
    };
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
fn strip_misplaced(attrs: &mut Vec<Attribute>, found: &mut Vec<Span>) {
    attrs.retain(|a| {
        let msg = is_msg_attr(a);
        if msg {
            found.push(a.path().span());
        }
        !msg
    });
}

/// Removes every `#[msg]` attribute from the impl's items (for re-emitting the
/// impl when the rest of `lower` is not needed).
pub(crate) fn strip_msg_attrs(item: &mut ItemImpl) {
    for impl_item in &mut item.items {
        let attrs = match impl_item {
            ImplItem::Fn(f) => &mut f.attrs,
            ImplItem::Const(c) => &mut c.attrs,
            ImplItem::Type(t) => &mut t.attrs,
            ImplItem::Macro(m) => &mut m.attrs,
            _ => continue,
        };
        attrs.retain(|a| !is_msg_attr(a));
    }
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
            duplicate_msg.push(attr.path().span());
            continue;
        }
        let args = match &attr.meta {
            Meta::Path(_) => None,
            Meta::List(l) => Some(l.delimiter.span().join()),
            Meta::NameValue(nv) => Some(nv.value.span()),
        };
        msg = Some(MsgAttr { span: attr.path().span(), args });
    }
    let generics = if sig.generics.params.is_empty() && sig.generics.where_clause.is_none() {
        None
    } else {
        Some(sig.generics.to_token_stream())
    };
    let mut receiver = Receiver::Missing;
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                receiver = if r.colon_token.is_some() {
                    Receiver::Typed(r.span())
                } else {
                    match &r.reference {
                        Some(_) if r.mutability.is_some() => Receiver::RefMut,
                        Some(_) => Receiver::Ref(r.span()),
                        None => Receiver::Value(r.span()),
                    }
                };
            }
            FnArg::Typed(pt) => {
                let pat = match &*pt.pat {
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => ArgPat::Ident(pi.ident.clone()),
                    other => ArgPat::Other(other.span()),
                };
                args.push(ParsedArg {
                    pat,
                    ctx: ctx_kind(&pt.ty),
                    ty: replace_self(&pt.ty, self_ty),
                    span: pt.span(),
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
        unsafety: sig.unsafety.map(|u| u.span),
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
        Type::Path(tp) if tp.qself.is_none() => tp
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == name && matches!(s.arguments, PathArguments::None)),
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
                    // Wrapped in `<...>` so `Self::Assoc` stays a valid path for any actor type.
                    let mut ty = self_ty.clone();
                    set_span(&mut ty, id.span());
                    quote::quote_spanned!(id.span()=> <#ty>)
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

/// Finds what makes a message argument or reply type unable to live in a
/// mailbox: a borrowed (non-`'static`) reference or lifetime, or an `impl
/// Trait`. Returns the span and a short description of the first problem.
pub(crate) fn non_owned(ty: &Type) -> Option<(Span, &'static str)> {
    match ty {
        Type::Reference(r) => match &r.lifetime {
            Some(l) if l.ident == "static" => non_owned(&r.elem),
            _ => Some((r.span(), "a borrowed reference")),
        },
        Type::ImplTrait(i) => Some((i.span(), "an `impl Trait` type")),
        Type::Path(tp) => {
            if let Some(q) = &tp.qself
                && let Some(p) = non_owned(&q.ty)
            {
                return Some(p);
            }
            tp.path.segments.iter().find_map(|seg| non_owned_args(&seg.arguments))
        }
        Type::Array(a) => non_owned(&a.elem),
        Type::Slice(s) => non_owned(&s.elem),
        Type::Paren(p) => non_owned(&p.elem),
        Type::Group(g) => non_owned(&g.elem),
        Type::Ptr(p) => non_owned(&p.elem),
        Type::Tuple(t) => t.elems.iter().find_map(non_owned),
        Type::TraitObject(t) => t.bounds.iter().find_map(|b| match b {
            syn::TypeParamBound::Lifetime(l) if l.ident != "static" => Some((l.span(), "a borrowed lifetime")),
            syn::TypeParamBound::Trait(tb) => tb.path.segments.iter().find_map(|seg| non_owned_args(&seg.arguments)),
            _ => None,
        }),
        // `fn(&T)` is higher-ranked, hence `'static`; the rest is rare or invalid anyway.
        _ => None,
    }
}

fn non_owned_args(args: &PathArguments) -> Option<(Span, &'static str)> {
    match args {
        PathArguments::AngleBracketed(ab) => ab.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => non_owned(t),
            GenericArgument::Lifetime(l) if l.ident != "static" => Some((l.span(), "a borrowed lifetime")),
            GenericArgument::AssocType(at) => non_owned(&at.ty),
            _ => None,
        }),
        // `Fn(&T) -> U` sugar is higher-ranked.
        _ => None,
    }
}

/// The `CamelCase` variant name of a snake_case method name: `get_value` →
/// `GetValue`, `get__x` → `GetX`, `r#type` → `Type`.
pub(crate) fn camel_case(method: &syn::Ident) -> String {
    let name = method.to_string();
    let name = name.strip_prefix("r#").unwrap_or(&name);
    let mut out = String::with_capacity(name.len());
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The method name as the user reads it (without `r#`).
pub(crate) fn plain_name(ident: &syn::Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}
