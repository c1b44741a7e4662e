//! The API: a client ([`client::ModelApi`], made by [`builder`]) and its
//! calls, the streams they return ([`stream::ChatStream`]), requests built
//! piece by piece ([`chat_request`]), embeddings ([`embed`]), the model
//! list ([`models`]) and the JSON exchange they share ([`exchange`]), and
//! canned replies ([`mock`]).

pub(crate) mod builder;
pub(crate) mod chat_request;
pub(crate) mod client;
pub(crate) mod embed;
pub(crate) mod exchange;
pub(crate) mod mock;
pub(crate) mod models;
pub(crate) mod stream;
