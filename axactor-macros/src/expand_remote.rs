//! Code generation for `#[actor(remote)]`, over the same checked [`Actor`]
//! as the local expansion and emitted after it.
//!
//! [`remote`] produces:
//!
//! * a compile-time check that every message argument and reply type is
//!   `axactor::RemoteSafe`, spanned at the user's type so the error points
//!   at it;
//! * the wire contract: `XTell` (one struct-like variant per tell), `XAsk`
//!   (one per ask) and `XReply` (one tuple variant per ask, holding its
//!   reply), all serde enums, and `XContract: axactor::RefContract` naming
//!   them;
//! * `impl axactor_cluster::RemoteActor for X`, converting contract values
//!   into `XMsg`s, with its `Pending` type: an enum of one
//!   `axactor_cluster::PendingReply` per ask, the future of an ask's reply
//!   delivered in process (no box per ask); the enum and the impl sit in an
//!   unnamed `const _` block, so the enum adds no name to the user's module;
//! * `XRemoteRef`, the remote handle wrapping `axactor_cluster::RemoteHandle<X>`.
//!
//! Variants follow the order of the `#[msg]` methods: that order *is* the
//! wire format (postcard encodes a variant by its index), so reordering,
//! adding or removing message methods changes the contract.
//!
//! serde is reached through `::axactor::__private::serde` and tokio's `mpsc`
//! through `::axactor_cluster::__private::mpsc`, so users need neither as a
//! dependency. As in [`crate::expand`], every path is absolute and every
//! local binding is hygienic.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Actor, Message, plain_name};
use crate::expand::{bindings, handle_struct, qualified, typed_params};

/// The names of the generated remote items.
struct Names {
    tell: syn::Ident,
    ask: syn::Ident,
    reply: syn::Ident,
    contract: syn::Ident,
    remote_ref: syn::Ident,
}

impl Names {
    fn of(actor: &Actor) -> Names {
        let name = &actor.name;
        let make = |suffix: &str| format_ident!("{}{}", name, suffix, span = name.span());
        Names {
            tell: make("Tell"),
            ask: make("Ask"),
            reply: make("Reply"),
            contract: make("Contract"),
            remote_ref: make("RemoteRef"),
        }
    }
}

/// Everything `#[actor(remote)]` generates in addition to [`crate::expand::local`].
pub(crate) fn remote(actor: &Actor) -> TokenStream {
    let names = Names::of(actor);
    let checks = remote_safe_checks(actor);
    let enums = contract_enums(actor, &names);
    let contract = contract(actor, &names);
    let remote_actor = remote_actor_impl(actor, &names);
    let remote_ref = remote_ref(actor, &names);
    quote! {
        #checks
        #enums
        #contract
        #remote_actor
        #remote_ref
    }
}

fn tells(actor: &Actor) -> impl Iterator<Item = &Message> {
    actor.messages.iter().filter(|m| !m.is_ask())
}

fn asks(actor: &Actor) -> impl Iterator<Item = (&Message, &syn::Type)> {
    actor.messages.iter().filter_map(|m| m.reply.as_ref().map(|r| (m, r)))
}

/// One `__assert_remote_safe::<T>()` per argument and reply type, spanned at
/// the type, so a type that cannot cross the wire is reported where it is
/// written, naming it.
fn remote_safe_checks(actor: &Actor) -> TokenStream {
    let checks = actor.messages.iter().flat_map(|m| {
        let cfgs = &m.cfgs;
        m.args.iter().map(|a| &a.ty).chain(&m.reply).map(move |ty| {
            quote_spanned! {ty.span()=>
                #(#cfgs)*
                __assert_remote_safe::<#ty>();
            }
        })
    });
    quote! {
        const _: () = {
            fn __assert_remote_safe<T: ::axactor::__private::AssertRemoteSafe>() {}
            #[allow(dead_code)]
            fn __check() {
                #(#checks)*
            }
        };
    }
}

/// The serde derives, through axactor's re-export.
fn serde_derives() -> TokenStream {
    quote! {
        #[derive(::axactor::__private::serde::Serialize, ::axactor::__private::serde::Deserialize)]
        #[serde(crate = "::axactor::__private::serde")]
    }
}

/// A `Debug` impl printing only the variant name (arguments need not be `Debug`).
fn debug_impl<'a>(enum_name: &syn::Ident, variants: impl Iterator<Item = &'a Message>, tuple: bool) -> TokenStream {
    let mut any_unconditional = false;
    let arms: Vec<TokenStream> = variants
        .map(|m| {
            let Message { variant, cfgs, .. } = m;
            any_unconditional |= cfgs.is_empty();
            let name = variant.to_string();
            let pat = if tuple { quote!((..)) } else { quote!({ .. }) };
            quote!(#(#cfgs)* Self::#variant #pat => f.write_str(#name),)
        })
        .collect();
    // With no (compiled-in) variant, the match has no arm and `f` goes unused.
    let unused_f = (!any_unconditional).then(|| quote!(let _ = f;));
    quote! {
        impl ::core::fmt::Debug for #enum_name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                #unused_f
                match *self {
                    #(#arms)*
                }
            }
        }
    }
}

/// The lints a generated public enum may trip in the user's crate.
fn enum_allows() -> TokenStream {
    quote! {
        #[allow(
            private_interfaces,
            unreachable_pub,
            dead_code,
            clippy::enum_variant_names,
            clippy::large_enum_variant
        )]
    }
}

/// `#[serde(with)]` for a type written `Vec<u8>` (bare, or as
/// `std::vec::Vec` / `alloc::vec::Vec`): one byte string instead of a
/// sequence of `u8` values, the same bytes in postcard (`axactor::byte_vec`).
/// A type alias or any other spelling keeps serde's own impl.
fn byte_vec_attr(ty: &syn::Type) -> Option<TokenStream> {
    let syn::Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let segs: Vec<String> = p.path.segments.iter().map(|s| s.ident.to_string()).collect();
    let is_vec = match segs.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["Vec"] => p.path.leading_colon.is_none(),
        ["std" | "alloc", "vec", "Vec"] => true,
        _ => false,
    };
    let last = p.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let [syn::GenericArgument::Type(syn::Type::Path(arg))] = &args.args.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let is_u8 = arg.qself.is_none() && arg.path.leading_colon.is_none() && arg.path.is_ident("u8");
    (is_vec && is_u8).then(|| quote!(#[serde(with = "::axactor::__private::byte_vec")]))
}

const WIRE_ORDER: &str = "Variants follow the order of the `#[msg]` methods, and that order is the wire \
                          format: reordering, adding or removing message methods changes the contract, \
                          so every node must run the same version of the actor.";

/// A struct-like variant carrying a message's arguments.
fn args_variant(actor: &Actor, m: &Message, kind: &str) -> TokenStream {
    let Message { variant, cfgs, docs, .. } = m;
    let vdoc = format!("The {kind} `{}`.", qualified(actor, &m.method));
    let sep = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
    let fields = m.args.iter().map(|arg| {
        let (name, ty) = (&arg.name, &arg.ty);
        let fdoc = format!("Argument `{}`.", plain_name(name));
        let with = byte_vec_attr(ty);
        quote!(#[doc = #fdoc] #with #name: #ty)
    });
    quote! {
        #(#cfgs)*
        #[doc = #vdoc]
        #sep
        #(#docs)*
        #variant { #(#fields),* }
    }
}

fn contract_enums(actor: &Actor, names: &Names) -> TokenStream {
    let Names { tell, ask, reply, .. } = names;
    let ty_name = plain_name(&actor.name);
    let derives = serde_derives();
    let allows = enum_allows();

    let tell_doc = format!(
        "The tells of the `{ty_name}` actor's wire contract: one variant per `#[msg]` method without a \
         return value, carrying its arguments (generated by `#[actor(remote)]`).\n\n{WIRE_ORDER}"
    );
    let tell_variants = tells(actor).map(|m| args_variant(actor, m, "tell"));
    let tell_debug = debug_impl(tell, tells(actor), false);

    let ask_doc = format!(
        "The asks of the `{ty_name}` actor's wire contract: one variant per `#[msg]` method with a \
         return value, carrying its arguments (generated by `#[actor(remote)]`). \
         The reply comes back as the `{}` variant of the same name.\n\n{WIRE_ORDER}",
        plain_name(reply)
    );
    let ask_variants = asks(actor).map(|(m, _)| args_variant(actor, m, "ask"));
    let ask_debug = debug_impl(ask, asks(actor).map(|(m, _)| m), false);

    let reply_doc = format!(
        "The replies of the `{ty_name}` actor's wire contract: one variant per ask, holding the value \
         its `#[msg]` method returned (generated by `#[actor(remote)]`).\n\n{WIRE_ORDER}"
    );
    let reply_variants = asks(actor).map(|(m, ty)| {
        let Message { variant, cfgs, .. } = m;
        let vdoc = format!("The reply of `{}`.", qualified(actor, &m.method));
        let with = byte_vec_attr(ty);
        // Spanned at the type: serde's errors about it then point there too.
        quote_spanned! {ty.span()=>
            #(#cfgs)*
            #[doc = #vdoc]
            #variant(#with #ty)
        }
    });
    let reply_debug = debug_impl(reply, asks(actor).map(|(m, _)| m), true);

    quote! {
        #[doc = #tell_doc]
        #allows
        #derives
        pub enum #tell {
            #(#tell_variants,)*
        }

        #tell_debug

        #[doc = #ask_doc]
        #allows
        #derives
        pub enum #ask {
            #(#ask_variants,)*
        }

        #ask_debug

        #[doc = #reply_doc]
        #allows
        #derives
        pub enum #reply {
            #(#reply_variants,)*
        }

        #reply_debug
    }
}

fn contract(actor: &Actor, names: &Names) -> TokenStream {
    let Names { tell, ask, reply, contract, .. } = names;
    let ty_name = plain_name(&actor.name);
    let doc = format!(
        "The wire contract of the `{ty_name}` actor: its tells (`{}`), asks (`{}`) and replies (`{}`), \
         encoded with postcard between nodes (generated by `#[actor(remote)]`).",
        plain_name(tell),
        plain_name(ask),
        plain_name(reply)
    );
    let debug_name = plain_name(contract);
    quote! {
        #[doc = #doc]
        #[allow(unreachable_pub, dead_code)]
        pub struct #contract;

        impl ::core::fmt::Debug for #contract {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(#debug_name)
            }
        }

        impl ::axactor::RefContract for #contract {
            type Tell = #tell;
            type Ask = #ask;
            type Reply = #reply;
        }
    }
}

fn remote_actor_impl(actor: &Actor, names: &Names) -> TokenStream {
    let Actor { self_ty, msg_enum, ref_struct, .. } = actor;
    let Names { tell, ask, reply, contract, remote_ref } = names;
    let tell_arg = syn::Ident::new("__tell", Span::mixed_site());
    let ask_arg = syn::Ident::new("__ask", Span::mixed_site());
    let reply_to = syn::Ident::new("__reply", Span::mixed_site());
    let rx = syn::Ident::new("__rx", Span::mixed_site());
    let pending_ty = syn::Ident::new("__Pending", Span::mixed_site());
    let pending_arg = syn::Ident::new("__pending", Span::mixed_site());
    let cx = syn::Ident::new("__cx", Span::mixed_site());

    let tell_arms = tells(actor).map(|m| {
        let Message { variant, cfgs, .. } = m;
        let fields: Vec<&syn::Ident> = m.args.iter().map(|a| &a.name).collect();
        let binds = bindings(m);
        quote! {
            #(#cfgs)*
            #tell::#variant { #(#fields: #binds),* } => #msg_enum::#variant { #(#fields: #binds),* },
        }
    });
    let ask_arms = asks(actor).map(|(m, _)| {
        let Message { variant, cfgs, .. } = m;
        let fields: Vec<&syn::Ident> = m.args.iter().map(|a| &a.name).collect();
        let binds = bindings(m);
        quote! {
            #(#cfgs)*
            #ask::#variant { #(#fields: #binds),* } => {
                let (#reply_to, #rx) = ::axactor::ReplyTo::channel();
                (
                    #msg_enum::#variant { #(#fields: #binds,)* __reply: #reply_to },
                    #pending_ty::#variant(::axactor_cluster::PendingReply::new(#rx, #reply::#variant)),
                )
            }
        }
    });
    let pending_variants = asks(actor).map(|(m, ty)| {
        let Message { variant, cfgs, .. } = m;
        quote! {
            #(#cfgs)*
            #variant(::axactor_cluster::PendingReply<#ty, #reply>)
        }
    });
    let pending_arms = asks(actor).map(|(m, _)| {
        let Message { variant, cfgs, .. } = m;
        quote! {
            #(#cfgs)*
            #pending_ty::#variant(ref mut #pending_arg) => {
                ::core::future::Future::poll(::core::pin::Pin::new(#pending_arg), #cx)
            }
        }
    });
    let allows = enum_allows();

    quote! {
        const _: () = {
        #[doc(hidden)]
        #allows
        pub enum #pending_ty {
            #(#pending_variants,)*
        }

        impl ::core::future::Future for #pending_ty {
            type Output = ::core::option::Option<#reply>;

            fn poll(
                self: ::core::pin::Pin<&mut Self>,
                #cx: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::core::option::Option<#reply>> {
                match *::core::pin::Pin::get_mut(self) {
                    #(#pending_arms)*
                }
            }
        }

        impl ::axactor_cluster::RemoteActor for #self_ty {
            type Contract = #contract;
            type RemoteRef = #remote_ref;
            type Pending = #pending_ty;

            fn remote_ref(handle: ::axactor_cluster::RemoteHandle<Self>) -> #remote_ref {
                #remote_ref { inner: handle }
            }

            fn local_ref(actor: &#ref_struct) -> ::axactor::LocalRef<#msg_enum> {
                #ref_struct::as_local_ref(actor)
            }

            fn tell_message(#tell_arg: #tell) -> #msg_enum {
                match #tell_arg {
                    #(#tell_arms)*
                }
            }

            fn ask_message(#ask_arg: #ask) -> (#msg_enum, #pending_ty) {
                match #ask_arg {
                    #(#ask_arms)*
                }
            }
        }
        };
    }
}

fn remote_ref(actor: &Actor, names: &Names) -> TokenStream {
    let self_ty = &actor.self_ty;
    let remote_ref = &names.remote_ref;
    let ty_name = plain_name(&actor.name);
    let doc = format!(
        "A handle to the `{ty_name}` activation of one key, wherever in the cluster it runs \
         (generated by `#[actor(remote)]`).\n\n\
         It has one method per `#[msg]` method of `{ty_name}`: tells come as `name` (sent, not \
         acknowledged) and `name_wait` (acknowledged once accepted into the owner's mailbox); asks \
         come as `name` and `name_timeout`. Calls are routed to the key's current owner, in \
         process when that is this node. Cheap to clone."
    );
    let debug_name = plain_name(remote_ref);
    let methods = actor.messages.iter().map(|m| remote_ref_methods(actor, names, m));
    let handle = handle_struct(
        &doc,
        remote_ref,
        quote!(::axactor_cluster::RemoteHandle<#self_ty>),
        quote!(f.debug_tuple(#debug_name).field(&self.inner).finish()),
    );
    quote! {
        #handle

        #[allow(unreachable_pub, private_interfaces, dead_code, clippy::too_many_arguments)]
        impl #remote_ref {
            /// The key this handle addresses.
            pub fn key(&self) -> &str {
                ::axactor_cluster::RemoteHandle::key(&self.inner)
            }

            /// Watches the key's current activation: the receiver gets exactly one
            /// `DownEvent` once that activation stops, loses its lease, or its node
            /// is declared down. Dropping the receiver cancels the monitor.
            ///
            /// # Errors
            /// A `RemoteError` when no owner could be reached.
            pub async fn monitor(
                &self,
            ) -> ::core::result::Result<
                ::axactor_cluster::__private::mpsc::Receiver<::axactor_cluster::DownEvent>,
                ::axactor_cluster::RemoteError,
            > {
                ::axactor_cluster::RemoteHandle::monitor(&self.inner).await
            }

            #(#methods)*
        }
    }
}

/// What the generated methods of one message share.
struct RemoteParts<'a> {
    m: &'a Message,
    /// The argument names, in order.
    arg_names: Vec<&'a syn::Ident>,
    /// `name: Type` per argument.
    params: Vec<TokenStream>,
    /// `Actor::method`, for the docs.
    target: String,
    /// An empty doc line between the method's own docs and ours, if any.
    sep: Option<TokenStream>,
}

/// The `XRemoteRef` methods of one message: two for a tell, two for an ask.
fn remote_ref_methods(actor: &Actor, names: &Names, m: &Message) -> TokenStream {
    let parts = RemoteParts {
        m,
        arg_names: m.args.iter().map(|a| &a.name).collect(),
        params: typed_params(m),
        target: qualified(actor, &m.method),
        sep: (!m.docs.is_empty()).then(|| quote!(#[doc = ""])),
    };
    match &m.reply {
        None => remote_tell_methods(&parts, names),
        Some(reply_ty) => remote_ask_methods(actor, &parts, names, reply_ty),
    }
}

/// `method` (handed on, no acknowledgement) and `method_wait` (accepted by
/// the owner's mailbox).
fn remote_tell_methods(p: &RemoteParts<'_>, names: &Names) -> TokenStream {
    let RemoteParts { m, arg_names, params, target, sep } = p;
    let Message { method, variant, cfgs, docs, .. } = m;
    let tell = &names.tell;
    let handle = quote!(::axactor_cluster::RemoteHandle);
    let error = quote!(::axactor_cluster::RemoteError);
    let wait = format_ident!("{}_wait", method, span = method.span());
    let doc = format!(
        "Sends `{target}` as a tell to the key's owner, without waiting for an acknowledgement: \
         `Ok` means it was handed on (to the owner's mailbox, or to the connection to the \
         owner), not that it will run.\n\n\
         # Errors\nA `RemoteError` when it could not be sent (no owner, mailbox or send queue \
         full, shut down).\n\n\
         # Cancel safety\nDropped before it completes, the tell may or may not have been handed on."
    );
    let doc_wait = format!(
        "Sends `{target}` as a tell and waits until the owner accepted it into the \
         activation's mailbox.\n\n\
         # Errors\nDefinite rejections are retried within the request timeout; what remains is \
         returned. `Timeout` and `ConnectionLost` mean it may have been enqueued.\n\n\
         # Cancel safety\nDropping the future abandons the wait for the acknowledgement; \
         a tell already sent may still be enqueued."
    );
    quote! {
        #(#cfgs)*
        #(#docs)*
        #sep
        #[doc = #doc]
        pub async fn #method(&self, #(#params),*) -> ::core::result::Result<(), #error> {
            #handle::tell(&self.inner, #tell::#variant { #(#arg_names),* }).await
        }

        #(#cfgs)*
        #[doc = #doc_wait]
        pub async fn #wait(&self, #(#params),*) -> ::core::result::Result<(), #error> {
            #handle::tell_wait(&self.inner, #tell::#variant { #(#arg_names),* }).await
        }
    }
}

/// `method` (bounded by the node's `request_timeout`) and `method_timeout`.
fn remote_ask_methods(actor: &Actor, p: &RemoteParts<'_>, names: &Names, reply_ty: &syn::Type) -> TokenStream {
    let RemoteParts { m, arg_names, params, target, sep } = p;
    let Message { method, variant, cfgs, docs, .. } = m;
    let self_ty = &actor.self_ty;
    let Names { ask, reply, .. } = names;
    let base = plain_name(method);
    let handle = quote!(::axactor_cluster::RemoteHandle);
    let error = quote!(::axactor_cluster::RemoteError);
    let timeout = format_ident!("{}_timeout", method, span = method.span());
    let doc = format!(
        "Asks `{target}` of the key's owner and waits for the reply, at most the node's \
         `request_timeout`.\n\n\
         # Errors\nA `RemoteError`: definite rejections are retried within the timeout and what \
         remains is returned; `Canceled` if the activation accepted the request but stopped \
         before replying, `Timeout` or `ConnectionLost` when the outcome is unknown (it may have \
         run).\n\n\
         # Cancel safety\nDropping the future abandons the request and frees its slot at once; \
         a request already sent may still run, and its reply is discarded."
    );
    let doc_timeout = format!(
        "Like `{base}`, but waits at most `__timeout` instead of the node's `request_timeout`.\n\n\
         # Errors\nAs `{base}`."
    );
    let value = syn::Ident::new("__value", Span::mixed_site());
    let received = syn::Ident::new("__received", Span::mixed_site());
    let ret = quote!(::core::result::Result<#reply_ty, #error>);
    // A single ask leaves the mismatch arm unreachable.
    let unpack = quote! {
        match #received {
            #reply::#variant(#value) => ::core::result::Result::Ok(#value),
            #[allow(unreachable_patterns)]
            _ => ::core::result::Result::Err(#handle::<#self_ty>::reply_mismatch()),
        }
    };
    quote! {
        #(#cfgs)*
        #(#docs)*
        #sep
        #[doc = #doc]
        pub async fn #method(&self, #(#params),*) -> #ret {
            let #received =
                #handle::ask(&self.inner, #ask::#variant { #(#arg_names),* }, ::core::option::Option::None).await?;
            #unpack
        }

        #(#cfgs)*
        #[doc = #doc_timeout]
        pub async fn #timeout(&self, #(#params,)* __timeout: ::core::time::Duration) -> #ret {
            let #received = #handle::ask(
                &self.inner,
                #ask::#variant { #(#arg_names),* },
                ::core::option::Option::Some(__timeout),
            )
            .await?;
            #unpack
        }
    }
}

#[cfg(test)]
mod tests {
    use super::byte_vec_attr;

    fn attr(ty: &str) -> bool {
        byte_vec_attr(&syn::parse_str(ty).expect("a type")).is_some()
    }

    #[test]
    fn byte_vectors_in_their_usual_spellings_are_byte_strings() {
        for ty in ["Vec<u8>", "std::vec::Vec<u8>", "::std::vec::Vec<u8>", "alloc::vec::Vec<u8>"] {
            assert!(attr(ty), "{ty}");
        }
    }

    #[test]
    fn other_types_keep_serde_s_own_impl() {
        for ty in [
            "Vec<u16>",
            "Vec<i8>",
            "Vec<Vec<u8>>",
            "::Vec<u8>",
            "my::Vec<u8>",
            "Vec<::u8>",
            "Option<Vec<u8>>",
            "[u8; 4]",
            "Bytes",
            "Vec",
        ] {
            assert!(!attr(ty), "{ty}");
        }
    }
}
