//! Validation: turns a [`ParsedActor`] into a checked [`Actor`], or reports
//! every rule that is broken, all at once (combined with
//! [`syn::Error::combine`]). Each error points at the offending tokens and
//! says both the rule and the fix.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{GenericArgument, PathArguments, Type};

use crate::ast::{
    Actor, ActorArgs, Arg, ArgPat, CtxKind, Hook, HookKind, Message, ParsedActor, ParsedArg, ParsedMethod, Receiver,
    is_named, plain_name, spot,
};

/// Names every generated `XRef` already has as methods.
const RESERVED_METHODS: &[&str] = &["pid", "stop", "stop_wait", "mailbox_len", "is_closed", "as_local_ref", "clone"];

/// Names every generated `XRemoteRef` has as methods besides the messages'
/// (only reserved for `#[actor(remote)]`).
const RESERVED_REMOTE_METHODS: &[&str] = &["key", "monitor"];

/// Argument names the generated code uses for itself.
const RESERVED_ARGS: &[&str] = &["__reply", "__timeout"];

/// Collects errors in source order.
#[derive(Default)]
struct Errors {
    all: Option<syn::Error>,
    count: usize,
}

impl Errors {
    /// Records an error covering `at` (first to last token).
    fn push(&mut self, at: impl ToTokens, msg: impl std::fmt::Display) {
        let err = syn::Error::new_spanned(at, msg);
        self.count += 1;
        match &mut self.all {
            Some(all) => all.combine(err),
            None => self.all = Some(err),
        }
    }
}

/// Checks every rule; returns the checked actor, or all the errors.
pub(crate) fn check(parsed: ParsedActor) -> syn::Result<Actor> {
    let mut errs = Errors::default();
    check_args(&parsed.args, &mut errs);

    let type_name = parsed.name.as_ref().map_or_else(|| "X".to_owned(), plain_name);
    let ref_name = format!("{type_name}Ref");
    let remote = parsed.args.remote.is_some();
    let names = Names { ref_name, remote_ref_name: remote.then(|| format!("{type_name}RemoteRef")) };

    check_impl_shape(&parsed, &type_name, &mut errs);
    let (messages, hooks) = check_methods(parsed.methods, &names, &mut errs);

    match (errs.all, parsed.name) {
        (Some(e), _) => Err(e),
        (None, Some(name)) => Ok(Actor {
            msg_enum: quote::format_ident!("{}Msg", name, span = name.span()),
            ref_struct: quote::format_ident!("{}Ref", name, span = name.span()),
            self_ty: parsed.self_ty,
            name,
            messages,
            hooks,
            remote,
        }),
        // Unreachable: a missing name was reported above. Kept total without panicking.
        (None, None) => Err(syn::Error::new(Span::call_site(), "#[actor] needs an impl block for a named type")),
    }
}

/// The impl block itself: an inherent impl of a named, non-generic type,
/// with `#[msg]` only on methods.
fn check_impl_shape(parsed: &ParsedActor, type_name: &str, errs: &mut Errors) {
    if let Some(path) = &parsed.trait_path {
        errs.push(
            path,
            format!(
                "#[actor] must be on an inherent impl block, not a trait impl; \
                 put the #[msg] methods in `impl {type_name} {{ ... }}` and put #[actor] there"
            ),
        );
    }
    if let Some(generics) = &parsed.generics {
        errs.push(
            generics,
            "#[actor] does not support generic impl blocks (the generated message enum and ref are not generic); \
             remove the generic parameters and where-clause, e.g. wrap a concrete type in a newtype",
        );
    }
    if parsed.name.is_none() {
        errs.push(
            &parsed.self_ty,
            "#[actor] needs an impl block for a named type, e.g. `impl Counter { ... }`; \
             define a struct and implement the actor on it",
        );
    }
    if let Some(args) = &parsed.self_ty_args
        && parsed.generics.is_none()
    {
        errs.push(
            args,
            "#[actor] does not support generic actor types; \
             remove the generic arguments, e.g. wrap the type in a non-generic newtype",
        );
    }
    for attr in &parsed.misplaced_msg {
        errs.push(attr, "#[msg] only applies to methods; remove it from this item");
    }
}

/// Each method: a lifecycle hook (by its name), a `#[msg]` message, or
/// neither (left as it is).
fn check_methods(methods: Vec<ParsedMethod>, names: &Names, errs: &mut Errors) -> (Vec<Message>, Vec<Hook>) {
    let mut messages = Vec::new();
    let mut hooks = Vec::new();
    let mut variants: HashMap<String, syn::Ident> = HashMap::new();
    for method in methods {
        let hook = HookKind::from_name(&plain_name(&method.ident));
        match (hook, &method.msg) {
            (Some(kind), Some(attr)) => errs.push(
                &attr.attr,
                format!(
                    "`{}` is a lifecycle hook, recognised by its name, so it cannot also be a #[msg] message; \
                     remove #[msg] (or rename the method to make it a message)",
                    kind.name()
                ),
            ),
            (Some(kind), None) => {
                if let Some(h) = check_hook(kind, method, errs) {
                    hooks.push(h);
                }
            }
            (None, Some(_)) => {
                if let Some(m) = check_message(method, names, &mut variants, errs) {
                    messages.push(m);
                }
            }
            (None, None) => {}
        }
    }
    (messages, hooks)
}

fn check_args(args: &ActorArgs, errs: &mut Errors) {
    if let Some(e) = &args.malformed {
        errs.push(
            spot(e.span()),
            format!("could not parse the #[actor] arguments ({e}); write `#[actor]` or `#[actor(remote)]`"),
        );
    }
    for dup in &args.duplicate {
        errs.push(dup, "duplicate #[actor] argument `remote`; write it once: `#[actor(remote)]`");
    }
    for arg in &args.unknown {
        errs.push(
            arg,
            format!(
                "unknown #[actor] argument `{arg}`; the only argument is `remote`: \
                 write `#[actor]` or `#[actor(remote)]`"
            ),
        );
    }
}

/// Checks the receiver; `what` names the kind of method for the message.
fn check_receiver(m: &ParsedMethod, what: &str, errs: &mut Errors) {
    let name = plain_name(&m.ident);
    let rule = format!(
        "{what} `{name}` must take `&mut self` (the actor runs one message at a time with exclusive access to its state)"
    );
    match &m.receiver {
        Receiver::RefMut => {}
        Receiver::Ref(r) => errs.push(r, format!("{rule}; change `&self` to `&mut self`")),
        Receiver::Value(r) => errs.push(r, format!("{rule}; change `self` to `&mut self`")),
        Receiver::Typed(r) => errs.push(r, format!("{rule}; replace the typed receiver with `&mut self`")),
        Receiver::Missing => errs.push(&m.ident, format!("{rule}; add `&mut self` as the first parameter")),
    }
}

/// Checks the position and form of a `Context` parameter. Returns whether the
/// method takes a (well-formed) context first.
fn check_ctx(m: &ParsedMethod, errs: &mut Errors) -> bool {
    let mut takes_ctx = false;
    for (i, arg) in m.args.iter().enumerate() {
        match arg.ctx {
            CtxKind::No => {}
            CtxKind::Wrong => errs.push(
                &arg.ty,
                "the context parameter must be `&mut Context` (the runtime lends it mutably); \
                 change the type to `&mut Context`",
            ),
            CtxKind::RefMut if i == 0 => takes_ctx = true,
            CtxKind::RefMut => errs.push(
                &arg.tokens,
                format!(
                    "the `&mut Context` parameter of `{}` must come first, right after `&mut self`; \
                     move it to the front",
                    plain_name(&m.ident)
                ),
            ),
        }
    }
    takes_ctx
}

/// The names of the generated handles, for diagnostics.
struct Names {
    /// `XRef`.
    ref_name: String,
    /// `XRemoteRef`, for `#[actor(remote)]` only.
    remote_ref_name: Option<String>,
}

fn check_message(
    m: ParsedMethod,
    names: &Names,
    variants: &mut HashMap<String, syn::Ident>,
    errs: &mut Errors,
) -> Option<Message> {
    let before = errs.count;
    let name = plain_name(&m.ident);
    check_msg_attrs(&m, errs);
    check_msg_name(&m.ident, &name, names, errs);
    let variant = message_variant(&m.ident, &name, variants, errs);
    check_msg_shape(&m, &name, errs);
    check_receiver(&m, "#[msg] method", errs);
    let takes_ctx = check_ctx(&m, errs);

    let mut args = Vec::new();
    for arg in m.args.iter().skip(usize::from(takes_ctx)) {
        if arg.ctx != CtxKind::No {
            continue; // reported by check_ctx
        }
        if let Some(a) = check_arg(arg, &name, errs) {
            args.push(a);
        }
    }
    if let Some(ty) = &m.output {
        check_reply(ty, &name, errs);
    }

    let after = errs.count;
    (after == before).then(|| Message {
        variant,
        is_async: m.is_async,
        takes_ctx,
        args,
        reply: m.output,
        docs: m.docs,
        cfgs: m.cfgs,
        method: m.ident,
    })
}

/// `#[msg]` takes no arguments and appears once.
fn check_msg_attrs(m: &ParsedMethod, errs: &mut Errors) {
    if let Some(attr) = &m.msg
        && let Some(args) = &attr.args
    {
        errs.push(args, "#[msg] takes no arguments; write `#[msg]`");
    }
    for attr in &m.duplicate_msg {
        errs.push(attr, "duplicate #[msg] attribute; keep a single `#[msg]`");
    }
}

/// A message method's name must not collide with what the generated refs
/// already have: their own methods, and the `_wait` / `_timeout` variants.
fn check_msg_name(ident: &syn::Ident, name: &str, names: &Names, errs: &mut Errors) {
    let ref_name = &names.ref_name;
    if RESERVED_METHODS.contains(&name) {
        errs.push(
            ident,
            format!(
                "#[msg] method name `{name}` is reserved: every `{ref_name}` already has a `{name}` method; \
                 rename this method"
            ),
        );
    } else if let Some(remote_ref) = &names.remote_ref_name
        && RESERVED_REMOTE_METHODS.contains(&name)
    {
        errs.push(
            ident,
            format!(
                "#[msg] method name `{name}` is reserved in a remote actor: every `{remote_ref}` already has a \
                 `{name}` method; rename this method"
            ),
        );
    } else if let Some(suffix) = ["_wait", "_timeout"].into_iter().find(|s| name.ends_with(s)) {
        errs.push(
            ident,
            format!(
                "#[msg] method names must not end in `{suffix}`: `{ref_name}` generates `{suffix}` variants \
                 of every message method (`name_wait`, `name_timeout`, `name_wait_timeout`); \
                 rename `{name}` so it does not end in `{suffix}`"
            ),
        );
    }
}

/// The message enum's variant for a method (its name in CamelCase, `Msg`
/// first if that does not start with a letter); two methods may not map to
/// one variant.
fn message_variant(
    ident: &syn::Ident,
    name: &str,
    variants: &mut HashMap<String, syn::Ident>,
    errs: &mut Errors,
) -> syn::Ident {
    let mut camel = camel_case(ident);
    if !camel.starts_with(|c: char| c.is_alphabetic()) {
        camel.insert_str(0, "Msg");
    }
    let variant = syn::Ident::new(&camel, ident.span());
    if let Some(first) = variants.get(&camel) {
        errs.push(
            ident,
            format!(
                "#[msg] method `{name}` maps to the message variant `{camel}`, which `{}` already uses; \
                 rename one of the two methods",
                plain_name(first)
            ),
        );
    } else {
        variants.insert(camel, ident.clone());
    }
    variant
}

/// A message method is neither `unsafe` nor generic.
fn check_msg_shape(m: &ParsedMethod, name: &str, errs: &mut Errors) {
    if let Some(unsafety) = &m.unsafety {
        errs.push(
            unsafety,
            format!("#[msg] method `{name}` cannot be `unsafe` (the generated handler calls it); remove `unsafe`"),
        );
    }
    if let Some(generics) = &m.generics {
        errs.push(
            generics,
            format!(
                "#[msg] method `{name}` cannot be generic: its arguments become fields of a non-generic \
                 message enum; remove the generic parameters and where-clause, and use concrete types \
                 (or `Box<dyn Trait>`)"
            ),
        );
    }
}

/// A reply travels back over a channel: owned, and a concrete type.
fn check_reply(ty: &Type, name: &str, errs: &mut Errors) {
    match non_owned(ty) {
        Some(NotOwned::Borrowed(at)) => errs.push(
            at,
            format!(
                "the reply of #[msg] method `{name}` is sent back over a channel, so it cannot borrow; \
                 return an owned type (e.g. `String` instead of `&str`, or an `Arc`)"
            ),
        ),
        Some(NotOwned::ImplTrait(at)) => errs.push(
            at,
            format!(
                "the reply of #[msg] method `{name}` is a field of the message enum, so it cannot be \
                 `impl Trait`; return a concrete type (e.g. a `Box<dyn Trait + Send>`)"
            ),
        ),
        None => {}
    }
}

fn check_arg(arg: &ParsedArg, method: &str, errs: &mut Errors) -> Option<Arg> {
    let name = match &arg.pat {
        ArgPat::Ident(id) => id.clone(),
        ArgPat::Other(pat) => {
            errs.push(
                pat,
                format!(
                    "#[msg] arguments must be plain names (each becomes a field of the message); \
                     give this argument of `{method}` a name, e.g. `arg: {}`, and destructure it in the body",
                    arg.ty.to_token_stream()
                ),
            );
            return None;
        }
    };
    let arg_name = plain_name(&name);
    if RESERVED_ARGS.contains(&arg_name.as_str()) {
        errs.push(
            &name,
            format!("argument name `{arg_name}` is reserved for the code #[actor] generates; rename the argument"),
        );
        return None;
    }
    match non_owned(&arg.ty) {
        Some(NotOwned::Borrowed(at)) => {
            errs.push(
                at,
                format!(
                    "#[msg] arguments are moved into the actor's mailbox, so argument `{arg_name}` cannot borrow; \
                     use an owned type (e.g. `String` instead of `&str`, `Vec<T>` instead of `&[T]`, or an `Arc`)"
                ),
            );
            return None;
        }
        Some(NotOwned::ImplTrait(at)) => {
            errs.push(
                at,
                format!(
                    "#[msg] arguments become fields of the message enum, so argument `{arg_name}` cannot be \
                     `impl Trait`; use a concrete type (e.g. a `Box<dyn Trait + Send>`)"
                ),
            );
            return None;
        }
        None => {}
    }
    Some(Arg { name, ty: arg.ty.clone() })
}

fn check_hook(kind: HookKind, m: ParsedMethod, errs: &mut Errors) -> Option<Hook> {
    let before = errs.count;
    let sig = kind.signature();
    let rule = format!(
        "`{}` is a lifecycle hook (recognised by its name) and must look like `{sig}`, sync or async",
        kind.name()
    );
    check_receiver(&m, "lifecycle hook", errs);
    let takes_ctx = check_ctx(&m, errs);
    if let Some(g) = &m.generics {
        errs.push(g, format!("{rule}; remove the generic parameters"));
    }
    if let Some(unsafety) = &m.unsafety {
        errs.push(unsafety, format!("{rule}; remove `unsafe`"));
    }
    if let Some(ty) = &m.output {
        errs.push(ty, format!("{rule}; remove the return type"));
    }
    let rest: Vec<&ParsedArg> = m.args.iter().skip(usize::from(takes_ctx)).collect();
    let params = kind.params();
    if rest.len() == params.len() {
        for (arg, p) in rest.iter().zip(params) {
            let ok = match (&arg.ty, p.by_ref) {
                (syn::Type::Reference(r), true) => r.mutability.is_none() && is_named(&r.elem, p.ty),
                (ty, false) => is_named(ty, p.ty),
                _ => false,
            };
            if !ok {
                let amp = if p.by_ref { "&" } else { "" };
                errs.push(&arg.ty, format!("{rule}; this parameter must be `{amp}{}`", p.ty));
            }
        }
    } else {
        let expected: Vec<String> =
            params.iter().map(|p| format!("{}: {}{}", p.name, if p.by_ref { "&" } else { "" }, p.ty)).collect();
        let fix = if expected.is_empty() {
            "it takes no parameters after the context".to_owned()
        } else {
            format!("after the context it takes exactly `{}`", expected.join(", "))
        };
        errs.push(&m.ident, format!("{rule}; {fix}"));
    }
    let after = errs.count;
    (after == before).then(|| Hook { kind, is_async: m.is_async, takes_ctx, cfgs: m.cfgs, method: m.ident })
}

/// Why a type cannot travel inside a message (or a reply).
pub(crate) enum NotOwned {
    /// A non-`'static` reference or lifetime (the tokens of it).
    Borrowed(TokenStream),
    /// An `impl Trait` type (an anonymous generic).
    ImplTrait(TokenStream),
}

/// Finds what makes a message argument or reply type unable to live in a
/// mailbox: a borrowed (non-`'static`) reference or lifetime, or an `impl
/// Trait`. Returns the first problem found.
pub(crate) fn non_owned(ty: &Type) -> Option<NotOwned> {
    match ty {
        Type::Reference(r) => match &r.lifetime {
            Some(l) if l.ident == "static" => non_owned(&r.elem),
            _ => Some(NotOwned::Borrowed(r.to_token_stream())),
        },
        Type::ImplTrait(i) => Some(NotOwned::ImplTrait(i.to_token_stream())),
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
            syn::TypeParamBound::Lifetime(l) if l.ident != "static" => Some(NotOwned::Borrowed(l.to_token_stream())),
            syn::TypeParamBound::Trait(tb) => tb.path.segments.iter().find_map(|seg| non_owned_args(&seg.arguments)),
            _ => None,
        }),
        // `fn(&T)` is higher-ranked, hence `'static`; the rest is rare or invalid anyway.
        _ => None,
    }
}

fn non_owned_args(args: &PathArguments) -> Option<NotOwned> {
    match args {
        PathArguments::AngleBracketed(ab) => ab.args.iter().find_map(|a| match a {
            GenericArgument::Type(t) => non_owned(t),
            GenericArgument::Lifetime(l) if l.ident != "static" => Some(NotOwned::Borrowed(l.to_token_stream())),
            GenericArgument::AssocType(at) => non_owned(&at.ty),
            _ => None,
        }),
        // `Fn(&T) -> U` sugar is higher-ranked.
        _ => None,
    }
}

/// The `CamelCase` variant name of a `snake_case` method name: `get_value` →
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

/// The error for `#[msg]` outside an `#[actor]` impl block.
pub(crate) fn msg_outside_actor(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "#[msg] only works on methods inside an #[actor] impl block; \
         put #[actor] on the enclosing `impl` block (or remove #[msg])",
    )
}

/// The error for `#[actor]` on something other than an impl block.
pub(crate) fn not_an_impl(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "#[actor] goes on the inherent `impl` block of the actor type, e.g. `#[actor] impl Counter { ... }`; \
         move it there",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(s: &str) -> syn::Ident {
        syn::parse_str(s).expect("ident")
    }

    #[test]
    fn camel_case_of_method_names() {
        assert_eq!(camel_case(&ident("get_value")), "GetValue");
        assert_eq!(camel_case(&ident("get__x")), "GetX");
        assert_eq!(camel_case(&ident("get_x")), "GetX");
        assert_eq!(camel_case(&ident("_private")), "Private");
        assert_eq!(camel_case(&ident("r#type")), "Type");
        assert_eq!(camel_case(&ident("add2_more")), "Add2More");
        assert_eq!(camel_case(&ident("__")), "");
    }

    fn owned(ty: &str) -> bool {
        non_owned(&syn::parse_str(ty).expect("type")).is_none()
    }

    #[test]
    fn owned_and_borrowed_types() {
        for ty in ["u8", "String", "Vec<String>", "&'static str", "fn(&str) -> usize", "Box<dyn Fn(&str) + Send>"] {
            assert!(owned(ty), "{ty} is owned");
        }
        for ty in ["&str", "&mut u8", "Vec<&str>", "Cow<'_, str>", "(u8, &str)", "impl Fn()", "Box<dyn Tr + 'a>"] {
            assert!(!owned(ty), "{ty} is not owned");
        }
    }
}
