// modelapi for C# (Mono, .NET, Unity): P/Invoke over the C API of
// include/modelapi.h. One file, no dependencies; copy it into a project
// beside libmodelapi.so (modelapi.dll, libmodelapi.dylib).
//
// Ownership: every native object (client, stream, cancel token) is held by a
// SafeHandle and freed by Dispose() (or, as a last resort, by the
// finalizer); strings the library returns are copied into .NET strings and
// freed at once; a native object is freed only once no call uses it (a
// stream keeps its cancel token, a call its client), so Dispose in any order
// never leaves a dangling pointer, and a disposed object throws
// ObjectDisposedException. Threads: a Client may be used by several threads
// at once (the setters are for before that); a ChatStream by one thread at a
// time, except Cancel() and Dispose(), which any thread may call while
// another one reads; a CancelToken may be cancelled from any thread. The
// library starts no thread: every callback runs on the thread that made the
// call, inside it.
//
// Callbacks are static methods marked [MonoPInvokeCallback] (needed by
// Unity's IL2CPP and by Mono's full AOT), with the per-call state passed
// through a GCHandle as the C user_data.

using System;
using System.Collections;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;

namespace ModelApi
{
    /// <summary>Marks a static method called from native code (IL2CPP and
    /// full AOT look for this attribute by name; Unity has one in the AOT
    /// namespace, this one lets the file compile without Unity).</summary>
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type type) { Type = type; }
        public Type Type { get; private set; }
    }

    /// <summary>The C API's ModelApiStatus; the numbers are stable.</summary>
    public enum Status
    {
        Ok = 0,
        Done = 1,
        InvalidArgument = 2,
        HttpError = 3,
        TransportError = 4,
        Timeout = 5,
        InvalidResponse = 6,
        Closed = 7,
        Aborted = 8,
        Internal = 9,
        ServerError = 10,
        Pending = 11,
    }

    /// <summary>The C API's ModelApiEventKind.</summary>
    public enum EventKind
    {
        Content = 0,
        Reasoning = 1,
        ToolCall = 2,
        Refusal = 3,
    }

    /// <summary>The C API's ModelApiTraceLevel.</summary>
    public enum TraceLevel
    {
        Error = 1,
        Warn = 2,
        Info = 3,
        Debug = 4,
    }

    /// <summary>A failed call: its status, the HTTP status of an
    /// HttpError (else 0), and the library's message.</summary>
    public class ModelApiException : Exception
    {
        public Status Status { get; private set; }
        public int HttpStatus { get; private set; }

        public ModelApiException(Status status, int httpStatus, string message)
            : base(message)
        {
            Status = status;
            HttpStatus = httpStatus;
        }

        public ModelApiException(Status status, int httpStatus, string message, Exception inner)
            : base(message, inner)
        {
            Status = status;
            HttpStatus = httpStatus;
        }

        /// <summary>Builds the exception from this thread's last error:
        /// call right after the failing call, on the same thread.</summary>
        internal static ModelApiException FromLastError(Status status)
        {
            string message = Utf8.FromNative(Native.modelapi_last_error());
            int http = status == Status.HttpError ? Native.modelapi_last_http_status() : 0;
            if (string.IsNullOrEmpty(message))
                message = status.ToString();
            return new ModelApiException(status, http, message);
        }
    }

    /// <summary>One chat message.</summary>
    public struct Message
    {
        public string Role;
        public string Content;

        public Message(string role, string content)
        {
            Role = role;
            Content = content;
        }

        public static Message System(string content) { return new Message("system", content); }
        public static Message User(string content) { return new Message("user", content); }
        public static Message Assistant(string content) { return new Message("assistant", content); }
    }

    /// <summary>One event of a stream: a piece of the text, of the
    /// reasoning, of a tool call (its index, and its id and name when this
    /// piece carries them, else null) or of a refusal.</summary>
    public struct StreamEvent
    {
        public EventKind Kind;
        public string Text;
        public uint ToolIndex;
        public string ToolId;
        public string ToolName;

        internal static StreamEvent FromNative(ref NativeEvent e)
        {
            StreamEvent ev;
            ev.Kind = (EventKind)e.kind;
            ev.Text = Utf8.FromNative(e.text, (long)e.len.ToUInt64());
            ev.ToolIndex = e.tool_index;
            ev.ToolId = e.tool_id == IntPtr.Zero ? null : Utf8.FromNative(e.tool_id);
            ev.ToolName = e.tool_name == IntPtr.Zero ? null : Utf8.FromNative(e.tool_name);
            return ev;
        }

        public override string ToString()
        {
            return Kind == EventKind.ToolCall
                ? string.Format("ToolCall[{0}] id={1} name={2} {3}", ToolIndex, ToolId, ToolName, Text)
                : Kind + ": " + Text;
        }
    }

    /// <summary>A whole answer: the response JSON and the first choice's
    /// text.</summary>
    public sealed class Completion
    {
        public string Json { get; private set; }
        public string Content { get; private set; }

        internal Completion(string json, string content)
        {
            Json = json;
            Content = content;
        }
    }

    /// <summary>A client of one server and model (ModelApi*). Thread-safe
    /// for calls; the setters are for before sharing it.</summary>
    public sealed class Client : IDisposable
    {
        private readonly ClientHandle handle;

        private volatile bool disposed;

        /// <summary>The handle, or ObjectDisposedException once Dispose
        /// was called (also while a call on another thread still holds
        /// the native object).</summary>
        private ClientHandle H
        {
            get
            {
                if (disposed)
                    throw new ObjectDisposedException("Client");
                return handle;
            }
        }

        /// <summary>A client of <paramref name="model"/> at
        /// <paramref name="apiBase"/>; <paramref name="apiKey"/> may be
        /// null. DEBUG_MOCK_RESPONSES is read now.</summary>
        public Client(string model, string apiBase, string apiKey = null)
        {
            handle = Native.modelapi_new(Utf8.ToNative(model), Utf8.ToNative(apiBase), Utf8.ToNative(apiKey));
            if (handle.IsInvalid)
                throw ModelApiException.FromLastError(Status.InvalidArgument);
        }

        private Client(ClientHandle h) { handle = h; }

        /// <summary>A client from MODEL_API_URL, MODEL_NAME and
        /// MODEL_API_KEY.</summary>
        public static Client FromEnv()
        {
            ClientHandle h = Native.modelapi_from_env();
            if (h.IsInvalid)
                throw ModelApiException.FromLastError(Status.InvalidArgument);
            return new Client(h);
        }

        public static string Version { get { return Utf8.FromNative(Native.modelapi_version()); } }

        public void SetTimeout(TimeSpan timeout)
        {
            Check(Native.modelapi_set_timeout_ms(H, (ulong)timeout.TotalMilliseconds));
        }

        public void SetMaxRetries(uint retries) { Check(Native.modelapi_set_max_retries(H, retries)); }

        /// <summary>The longest wait from sending a request to its first
        /// event (keep-alive comments and role-only deltas do not count);
        /// TimeSpan.Zero turns it off. Past it the attempt fails
        /// (Status.Timeout) or the next fallback is tried.</summary>
        public void SetFirstTokenTimeout(TimeSpan timeout)
        {
            Check(Native.modelapi_set_first_token_timeout_ms(H, (ulong)timeout.TotalMilliseconds));
        }

        /// <summary>Adds an endpoint tried, in order, when the current one
        /// fails before any event was handed out; apiKey (null: none) goes
        /// to it alone.</summary>
        public void AddFallback(string apiBase, string model, string apiKey)
        {
            Check(Native.modelapi_add_fallback(H, Utf8.ToNative(apiBase), Utf8.ToNative(model),
                apiKey == null ? null : Utf8.ToNative(apiKey)));
        }

        /// <summary>When the current endpoint has not produced its first
        /// event after delay, the next fallback starts too; the first to
        /// produce an event serves, the other is closed. TimeSpan.Zero turns
        /// it off.</summary>
        public void SetHedge(TimeSpan delay)
        {
            Check(Native.modelapi_set_hedge_ms(H, (ulong)delay.TotalMilliseconds));
        }

        public void SetHeader(string name, string value)
        {
            Check(Native.modelapi_set_header(H, Utf8.ToNative(name), Utf8.ToNative(value)));
        }

        /// <summary>Replaces the canned replies, written as
        /// DEBUG_MOCK_RESPONSES is (a JSON array of strings and of objects
        /// standing for assistant messages), in place of that variable:
        /// each answers one call, in order, with no network traffic. null:
        /// none, whatever the variable says. For tests on .NET and in
        /// Unity, where setting the process's environment does not reach
        /// the library.</summary>
        public void SetMockResponses(string repliesJson)
        {
            Check(Native.modelapi_set_mock_responses(H, repliesJson == null ? null : Utf8.ToNative(repliesJson)));
        }

        /// <summary>Sets the trace hook: <paramref name="onTrace"/> gets
        /// one line per step of every request (never the key or message
        /// content), on the thread making the call, possibly on several
        /// threads at once; it must not call this client. null turns
        /// tracing off. Call before sharing the client.</summary>
        public void SetTrace(Action<TraceLevel, string> onTrace)
        {
            if (onTrace == null)
            {
                Check(Native.modelapi_set_trace(H, null, IntPtr.Zero));
                handle.SetTrace(null);
                return;
            }
            GCHandle gc = GCHandle.Alloc(onTrace);
            Status s = Native.modelapi_set_trace(H, TraceThunk, GCHandle.ToIntPtr(gc));
            if (s != Status.Ok)
            {
                ModelApiException error = ModelApiException.FromLastError(s);
                gc.Free();
                throw error;
            }
            // The handle frees the GCHandle after the client itself.
            handle.SetTrace(gc);
        }

        private static readonly Native.TraceFn TraceThunk = OnTraceStatic;

        [MonoPInvokeCallback(typeof(Native.TraceFn))]
        private static void OnTraceStatic(IntPtr userData, int level, IntPtr line)
        {
            try
            {
                var onTrace = (Action<TraceLevel, string>)GCHandle.FromIntPtr(userData).Target;
                onTrace((TraceLevel)level, Utf8.FromNative(line));
            }
            catch (Exception)
            {
                // Never across the native frames; a trace hook has no way
                // to report.
            }
        }

        /// <summary>One chat completion.</summary>
        public Completion Complete(IList<Message> messages, string mockResponse = null)
        {
            using (var native = new NativeMessages(messages))
            {
                IntPtr json, content;
                Status s = Native.modelapi_complete(H, native.Array, (UIntPtr)messages.Count,
                    Utf8.ToNative(mockResponse), out json, out content);
                if (s != Status.Ok)
                    throw ModelApiException.FromLastError(s);
                return new Completion(Utf8.TakeOwned(json), Utf8.TakeOwned(content));
            }
        }

        /// <summary>One chat completion of a JSON request (an array of
        /// messages, or a request object with tools, temperature, ...);
        /// <paramref name="cancel"/> may stop it from another thread.</summary>
        public Completion CompleteJson(string messagesJson, CancelToken cancel = null, string mockResponse = null)
        {
            IntPtr json, content;
            Status s = Native.modelapi_complete_with(H, Utf8.ToNative(messagesJson),
                Utf8.ToNative(mockResponse), CancelToken.HandleOf(cancel), out json, out content);
            if (s != Status.Ok)
                throw ModelApiException.FromLastError(s);
            return new Completion(Utf8.TakeOwned(json), Utf8.TakeOwned(content));
        }

        /// <summary>Opens a pull stream (blocking until the answer's head
        /// arrived): read it with foreach, Next or Poll.</summary>
        public ChatStream OpenStream(IList<Message> messages, string mockResponse = null)
        {
            using (var native = new NativeMessages(messages))
            {
                StreamHandle h;
                Status s = Native.modelapi_stream_open(H, native.Array, (UIntPtr)messages.Count,
                    Utf8.ToNative(mockResponse), out h);
                if (s != Status.Ok)
                    throw ModelApiException.FromLastError(s);
                return new ChatStream(h);
            }
        }

        /// <summary>OpenStream with a JSON request; <paramref name="cancel"/>
        /// (kept alive by the stream) may stop it from another thread.</summary>
        public ChatStream OpenStreamJson(string messagesJson, CancelToken cancel = null, string mockResponse = null)
        {
            return WithToken(Native.modelapi_stream_open_with, messagesJson, cancel, mockResponse);
        }

        /// <summary>Starts a stream and returns at once, for a loop that
        /// must never block (a game's Update): call Poll each frame.</summary>
        public ChatStream StartStream(string messagesJson, CancelToken cancel = null, string mockResponse = null)
        {
            return WithToken(Native.modelapi_stream_start, messagesJson, cancel, mockResponse);
        }

        delegate Status OpenWithToken(ClientHandle api, byte[] messagesJson, byte[] mockResponse,
            SafeHandle cancel, out StreamHandle stream);

        /// <summary>Opens a stream with <paramref name="open"/>, the stream
        /// holding a reference on <paramref name="cancel"/> (the C API
        /// requires the token to outlive the stream); on failure the
        /// reference is released and the call's error thrown.</summary>
        ChatStream WithToken(OpenWithToken open, string messagesJson, CancelToken cancel, string mockResponse)
        {
            SafeHandle held = CancelToken.AddRef(cancel);
            StreamHandle h;
            Status s;
            try
            {
                s = open(H, Utf8.ToNative(messagesJson), Utf8.ToNative(mockResponse),
                    held ?? CancelHandle.Null, out h);
            }
            catch
            {
                if (held != null)
                    held.DangerousRelease();
                throw;
            }
            if (s != Status.Ok)
            {
                ModelApiException error = ModelApiException.FromLastError(s);
                if (held != null)
                    held.DangerousRelease();
                throw error;
            }
            h.HoldToken(held);
            return new ChatStream(h);
        }

        /// <summary>A stream whose bytes the host carries (Unity's
        /// UnityWebRequest, a console SDK's HTTP): the request is built as
        /// the client would send it (ChatStream.RequestUrl, RequestHeaders,
        /// RequestBody) and no connection is opened. Send it, feed what
        /// comes back (FeedHead once, Feed as bytes arrive, e.g. from a
        /// DownloadHandlerScript's ReceiveData, FeedEnd), and read events
        /// with Poll: Status.Pending until the bytes an event needs have
        /// been fed. Timeouts, retries and redirects are the host's.</summary>
        public ChatStream StreamDetached(string messagesJson, string mockResponse = null)
        {
            StreamHandle h;
            Status s = Native.modelapi_stream_detached(H, Utf8.ToNative(messagesJson),
                Utf8.ToNative(mockResponse), out h);
            if (s != Status.Ok)
                throw ModelApiException.FromLastError(s);
            return new ChatStream(h);
        }

        /// <summary>StreamDetached of these messages.</summary>
        public ChatStream StreamDetached(IList<Message> messages)
        {
            return StreamDetached(Utf8.MessagesJson(messages));
        }

        /// <summary>StartStream of these messages.</summary>
        public ChatStream StartStream(IList<Message> messages, CancelToken cancel = null)
        {
            return StartStream(Utf8.MessagesJson(messages), cancel);
        }

        /// <summary>A streamed completion handed to <paramref name="onEvent"/>
        /// event by event, on this thread; returning false stops it
        /// (ModelApiException with Status.Aborted). Returns the whole
        /// answer as chat.completion JSON. An exception thrown by
        /// onEvent stops the stream and is rethrown here.</summary>
        public string StreamEvents(string messagesJson, Func<StreamEvent, bool> onEvent,
            CancelToken cancel = null, string mockResponse = null)
        {
            var state = new CallbackState { OnEvent = onEvent };
            GCHandle gc = GCHandle.Alloc(state);
            try
            {
                IntPtr json;
                Status s = Native.modelapi_stream_events(H, Utf8.ToNative(messagesJson),
                    Utf8.ToNative(mockResponse), CancelToken.HandleOf(cancel), EventThunk,
                    GCHandle.ToIntPtr(gc), out json);
                if (s != Status.Ok)
                {
                    ModelApiException error = ModelApiException.FromLastError(s);
                    if (state.Error != null)
                        throw new ModelApiException(error.Status, 0, "the callback threw: " + state.Error.Message, state.Error);
                    throw error;
                }
                return Utf8.TakeOwned(json);
            }
            finally
            {
                gc.Free();
            }
        }

        /// <summary>A streamed completion's text handed to
        /// <paramref name="onChunk"/> chunk by chunk (return false to
        /// stop).</summary>
        public void StreamText(string messagesJson, Func<string, bool> onChunk,
            CancelToken cancel = null, string mockResponse = null)
        {
            var state = new CallbackState { OnChunk = onChunk };
            GCHandle gc = GCHandle.Alloc(state);
            try
            {
                Status s = Native.modelapi_stream_with(H, Utf8.ToNative(messagesJson),
                    Utf8.ToNative(mockResponse), CancelToken.HandleOf(cancel), ChunkThunk,
                    GCHandle.ToIntPtr(gc));
                if (s != Status.Ok)
                {
                    ModelApiException error = ModelApiException.FromLastError(s);
                    if (state.Error != null)
                        throw new ModelApiException(error.Status, 0, "the callback threw: " + state.Error.Message, state.Error);
                    throw error;
                }
            }
            finally
            {
                gc.Free();
            }
        }

        public void Dispose()
        {
            disposed = true;
            handle.Dispose();
        }

        private static void Check(Status s)
        {
            if (s != Status.Ok)
                throw ModelApiException.FromLastError(s);
        }

        private sealed class CallbackState
        {
            public Func<StreamEvent, bool> OnEvent;
            public Func<string, bool> OnChunk;
            public Exception Error;
        }

        // Static delegates, kept alive for the process's life (a collected
        // delegate's thunk would crash the library's next callback).
        private static readonly Native.EventFn EventThunk = OnEventStatic;
        private static readonly Native.ChunkFn ChunkThunk = OnChunkStatic;

        [MonoPInvokeCallback(typeof(Native.EventFn))]
        private static int OnEventStatic(IntPtr userData, IntPtr eventPtr)
        {
            var state = (CallbackState)GCHandle.FromIntPtr(userData).Target;
            try
            {
                var native = (NativeEvent)Marshal.PtrToStructure(eventPtr, typeof(NativeEvent));
                return state.OnEvent(StreamEvent.FromNative(ref native)) ? 0 : 1;
            }
            catch (Exception e)
            {
                // Never let an exception cross the native frames.
                state.Error = e;
                return 1;
            }
        }

        [MonoPInvokeCallback(typeof(Native.ChunkFn))]
        private static int OnChunkStatic(IntPtr userData, IntPtr chunk, UIntPtr len)
        {
            var state = (CallbackState)GCHandle.FromIntPtr(userData).Target;
            try
            {
                return state.OnChunk(Utf8.FromNative(chunk, (long)len.ToUInt64())) ? 0 : 1;
            }
            catch (Exception e)
            {
                state.Error = e;
                return 1;
            }
        }
    }

    /// <summary>A stream of one answer (ModelApiStream*): read it with
    /// foreach (blocking), Next (blocking) or Poll (never blocking with
    /// waitMs 0). One thread at a time; Cancel from any thread.</summary>
    public sealed class ChatStream : IDisposable, IEnumerable<StreamEvent>
    {
        private readonly StreamHandle handle;

        private volatile bool disposed;

        /// <summary>The handle, or ObjectDisposedException once Dispose
        /// was called (also while a call on another thread still holds
        /// the native object).</summary>
        private StreamHandle H
        {
            get
            {
                if (disposed)
                    throw new ObjectDisposedException("ChatStream");
                return handle;
            }
        }

        internal ChatStream(StreamHandle h)
        {
            handle = h;
        }

        /// <summary>The next event, blocking until it comes: true with the
        /// event, false at the end; throws ModelApiException on an
        /// error (after which the stream is over). On a detached stream
        /// it cannot wait for the host: it throws with Status.Pending
        /// (the stream goes on) when the bytes are not fed yet.</summary>
        public bool Next(out StreamEvent ev)
        {
            NativeEvent native;
            Status s = Native.modelapi_stream_next_event(H, out native);
            if (s == Status.Pending)
                throw ModelApiException.FromLastError(s);
            return Finish(s, ref native, out ev) == Status.Ok;
        }

        /// <summary>The next event if one can be had within
        /// <paramref name="waitMs"/> (0: at once, never blocking):
        /// Status.Ok with the event, Status.Pending (call again later) or
        /// Status.Done; throws ModelApiException on an error.</summary>
        public Status Poll(out StreamEvent ev, uint waitMs = 0)
        {
            NativeEvent native;
            Status s = Native.modelapi_stream_poll(H, waitMs, out native);
            return Finish(s, ref native, out ev);
        }

        private static Status Finish(Status s, ref NativeEvent native, out StreamEvent ev)
        {
            if (s == Status.Ok)
            {
                ev = StreamEvent.FromNative(ref native);
                return s;
            }
            ev = default(StreamEvent);
            if (s == Status.Done || s == Status.Pending)
                return s;
            throw ModelApiException.FromLastError(s);
        }

        public IEnumerator<StreamEvent> GetEnumerator()
        {
            StreamEvent ev;
            while (Next(out ev))
                yield return ev;
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>The answer assembled from what was read so far, as
        /// chat.completion JSON (also after an error).</summary>
        public string CompletionJson
        {
            get
            {
                IntPtr json;
                Status s = Native.modelapi_stream_completion_json(H, out json);
                if (s != Status.Ok)
                    throw ModelApiException.FromLastError(s);
                return Utf8.TakeOwned(json);
            }
        }

        /// <summary>finish_reason ("stop", "tool_calls", ...), or null
        /// while none came.</summary>
        public string FinishReason { get { return Utf8.FromNativeOrNull(Native.modelapi_stream_finish_reason(H)); } }
        public string Id { get { return Utf8.FromNativeOrNull(Native.modelapi_stream_id(H)); } }
        public string Model { get { return Utf8.FromNativeOrNull(Native.modelapi_stream_model(H)); } }
        /// <summary>The x-request-id header of the response, or null.</summary>
        public string RequestId { get { return Utf8.FromNativeOrNull(Native.modelapi_stream_request_id(H)); } }
        /// <summary>The api_base of the endpoint that served the stream (its
        /// own or a fallback's), or null before the first event.</summary>
        public string Endpoint { get { return Utf8.FromNativeOrNull(Native.modelapi_stream_endpoint(H)); } }
        /// <summary>The milliseconds from the start to the first event, or
        /// -1 before it.</summary>
        public long FirstEventMs { get { return Native.modelapi_stream_first_event_ms(H); } }

        /// <summary>The token counts, when the server sent them.</summary>
        public bool TryGetUsage(out ulong prompt, out ulong completion, out ulong total)
        {
            return Native.modelapi_stream_usage(H, out prompt, out completion, out total) != 0;
        }

        /// <summary>The socket to wait on (for a host's own poll), or -1;
        /// see modelapi_stream_fd.</summary>
        public int Fd(out bool wantsWrite)
        {
            int w;
            int fd = Native.modelapi_stream_fd(H, out w);
            wantsWrite = w != 0;
            return fd;
        }

        /// <summary>A detached stream's request (see
        /// Client.StreamDetached): the URL to POST to, or null for
        /// another stream.</summary>
        public string RequestUrl { get { return Utf8.FromNativeOrNull(Native.modelapi_stream_request_url(H)); } }

        /// <summary>A detached stream's request headers (the key among
        /// them: send them to RequestUrl only), without Host and
        /// Content-Length, which the HTTP stack writes.</summary>
        public KeyValuePair<string, string>[] RequestHeaders
        {
            get
            {
                int count = (int)Native.modelapi_stream_request_header_count(H);
                var headers = new KeyValuePair<string, string>[count];
                for (int i = 0; i < count; i++)
                {
                    IntPtr name, value;
                    Status s = Native.modelapi_stream_request_header(H, (UIntPtr)i, out name, out value);
                    if (s != Status.Ok)
                        throw ModelApiException.FromLastError(s);
                    headers[i] = new KeyValuePair<string, string>(Utf8.FromNative(name), Utf8.FromNative(value));
                }
                return headers;
            }
        }

        /// <summary>A detached stream's JSON body, as UTF-8 bytes.</summary>
        public byte[] RequestBody
        {
            get
            {
                IntPtr body;
                UIntPtr len;
                Status s = Native.modelapi_stream_request_body(H, out body, out len);
                if (s != Status.Ok)
                    throw ModelApiException.FromLastError(s);
                var bytes = new byte[(int)len];
                Marshal.Copy(body, bytes, 0, bytes.Length);
                return bytes;
            }
        }

        /// <summary>Feeds a detached stream the answer's status and
        /// Content-Type (null if none), once, before any body byte.</summary>
        public void FeedHead(int httpStatus, string contentType)
        {
            Status s = Native.modelapi_stream_feed_head(H, httpStatus, Utf8.ToNative(contentType));
            if (s != Status.Ok)
                throw ModelApiException.FromLastError(s);
        }

        /// <summary>Feeds a detached stream <paramref name="count"/> body
        /// bytes from <paramref name="data"/> at <paramref name="offset"/>,
        /// as they arrive (copied).</summary>
        public void Feed(byte[] data, int offset, int count)
        {
            if (data == null)
                throw new ArgumentNullException("data");
            if (offset < 0 || count < 0 || offset > data.Length - count)
                throw new ArgumentOutOfRangeException("offset", "offset and count are outside data");
            GCHandle pinned = GCHandle.Alloc(data, GCHandleType.Pinned);
            Status s;
            try
            {
                s = Native.modelapi_stream_feed(H, pinned.AddrOfPinnedObject() + offset, (UIntPtr)count);
            }
            finally
            {
                pinned.Free();
            }
            if (s != Status.Ok)
                throw ModelApiException.FromLastError(s);
        }

        /// <summary>Feed of a whole array.</summary>
        public void Feed(byte[] data) { Feed(data, 0, data == null ? 0 : data.Length); }

        /// <summary>Ends a detached stream's body (also when the host's
        /// transfer failed): a stream without [DONE] or a finish_reason
        /// then fails as truncated.</summary>
        public void FeedEnd()
        {
            Status s = Native.modelapi_stream_feed_end(H);
            if (s != Status.Ok)
                throw ModelApiException.FromLastError(s);
        }

        /// <summary>The longest wait before the next Poll, in ms; -1 once
        /// the stream is over (and on a detached stream with nothing to do
        /// until the host feeds it).</summary>
        public long WakeMs { get { return Native.modelapi_stream_wake_ms(H); } }

        /// <summary>Cancels the stream: safe from any thread, also while
        /// another thread is blocked in Next (which then throws with
        /// Status.Aborted). A stream started with a CancelToken shares
        /// it: this cancels the token, so every call using it.</summary>
        public void Cancel() { Native.modelapi_stream_cancel(H); }

        /// <summary>Frees the stream, closing its connection in the middle
        /// of an answer. Safe from any thread: the native stream is freed
        /// once a call running on another thread has returned; a read
        /// blocked there is cancelled (it throws with Status.Aborted),
        /// unless the stream was started with a CancelToken (cancel that
        /// token, which is shared, first).</summary>
        public void Dispose()
        {
            try
            {
                // A stream with a token shares it: cancelling it would stop
                // every other call using that token.
                if (!handle.IsClosed && !handle.HasToken)
                    Native.modelapi_stream_cancel(H);
            }
            catch (ObjectDisposedException)
            {
                // Disposed by another thread meanwhile.
            }
            disposed = true;
            handle.Dispose();
        }
    }

    /// <summary>A cancel token (ModelApiCancel*): pass it to calls, cancel
    /// it from any thread.</summary>
    public sealed class CancelToken : IDisposable
    {
        private readonly CancelHandle handle;

        private volatile bool disposed;

        /// <summary>The handle, or ObjectDisposedException once Dispose
        /// was called (also while a call on another thread still holds
        /// the native object).</summary>
        private CancelHandle H
        {
            get
            {
                if (disposed)
                    throw new ObjectDisposedException("CancelToken");
                return handle;
            }
        }

        public CancelToken()
        {
            handle = Native.modelapi_cancel_new();
            if (handle.IsInvalid)
                throw ModelApiException.FromLastError(Status.Internal);
        }

        /// <summary>Cancels every call and stream using the token (they
        /// throw with Status.Aborted), until Reset.</summary>
        public void Cancel() { Native.modelapi_cancel(H); }

        public void Reset() { Native.modelapi_cancel_reset(H); }

        /// <summary>Frees the token once no call and no stream uses it
        /// (each stream started with it keeps it until disposed).</summary>
        public void Dispose()
        {
            disposed = true;
            handle.Dispose();
        }

        internal static SafeHandle HandleOf(CancelToken token)
        {
            return token == null ? (SafeHandle)CancelHandle.Null : token.H;
        }

        /// <summary>For a stream that will use the token: its handle with
        /// a reference added (null for no token), to be handed to the
        /// stream (StreamHandle.HoldToken) or released.</summary>
        internal static SafeHandle AddRef(CancelToken token)
        {
            if (token == null)
                return null;
            bool added = false;
            token.H.DangerousAddRef(ref added);
            return token.H;
        }
    }

    // ---- native side --------------------------------------------------

    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeMessage
    {
        public IntPtr role;
        public IntPtr content;
    }

    /// <summary>ModelApiEvent, field for field.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct NativeEvent
    {
        public int kind;
        public IntPtr text;
        public UIntPtr len;
        public uint tool_index;
        public IntPtr tool_id;
        public IntPtr tool_name;
    }

    public sealed class ClientHandle : SafeHandle
    {
        // The trace hook's user_data, freed after the client (the previous
        // one when the hook is replaced: no call runs while it is set).
        private GCHandle trace;

        public ClientHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        internal void SetTrace(GCHandle? gc)
        {
            if (trace.IsAllocated)
                trace.Free();
            trace = gc ?? default(GCHandle);
        }

        protected override bool ReleaseHandle()
        {
            Native.modelapi_close(handle);
            if (trace.IsAllocated)
                trace.Free();
            return true;
        }
    }

    public sealed class StreamHandle : SafeHandle
    {
        // The stream's cancel token, held (DangerousAddRef) until the
        // stream is freed: the C token must outlive the stream, whatever
        // order the two are disposed in.
        private SafeHandle token;

        public StreamHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }

        /// <summary>Takes over a reference the caller added on
        /// <paramref name="held"/>.</summary>
        internal void HoldToken(SafeHandle held) { token = held; }

        internal bool HasToken { get { return token != null; } }

        protected override bool ReleaseHandle()
        {
            Native.modelapi_stream_free(handle);
            if (token != null)
                token.DangerousRelease();
            return true;
        }
    }

    public sealed class CancelHandle : SafeHandle
    {
        public CancelHandle() : base(IntPtr.Zero, true) { }
        private CancelHandle(bool owns) : base(IntPtr.Zero, owns) { }
        /// <summary>NULL: no token.</summary>
        internal static readonly CancelHandle Null = new CancelHandle(false);
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.modelapi_cancel_free(handle); return true; }
    }

    /// <summary>The messages as a native ModelApiMessage array, with their
    /// strings in UTF-8, freed by Dispose.</summary>
    internal sealed class NativeMessages : IDisposable
    {
        public readonly NativeMessage[] Array;
        private readonly List<IntPtr> owned = new List<IntPtr>();

        public NativeMessages(IList<Message> messages)
        {
            if (messages == null)
                throw new ArgumentNullException("messages");
            Array = new NativeMessage[Math.Max(messages.Count, 1)];
            try
            {
                for (int i = 0; i < messages.Count; i++)
                {
                    Array[i].role = Alloc(messages[i].Role);
                    Array[i].content = Alloc(messages[i].Content);
                }
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        private IntPtr Alloc(string s)
        {
            if (s == null)
                return IntPtr.Zero; // the library reports it as InvalidArgument
            byte[] bytes = Utf8.ToNative(s);
            IntPtr p = Marshal.AllocHGlobal(bytes.Length);
            owned.Add(p);
            Marshal.Copy(bytes, 0, p, bytes.Length);
            return p;
        }

        public void Dispose()
        {
            foreach (IntPtr p in owned)
                Marshal.FreeHGlobal(p);
            owned.Clear();
        }
    }

    /// <summary>UTF-8 both ways.</summary>
    internal static class Utf8
    {
        private static readonly UTF8Encoding Strict = new UTF8Encoding(false, true);

        /// <summary>NUL-terminated UTF-8 (null for null). A string with a
        /// NUL inside is an ArgumentException (C would cut it).</summary>
        public static byte[] ToNative(string s)
        {
            if (s == null)
                return null;
            if (s.IndexOf('\0') >= 0)
                throw new ArgumentException("a string passed to modelapi holds a NUL character");
            byte[] bytes = new byte[Strict.GetByteCount(s) + 1];
            Strict.GetBytes(s, 0, s.Length, bytes, 0);
            return bytes;
        }

        public static string FromNative(IntPtr p, long len)
        {
            if (p == IntPtr.Zero || len == 0)
                return "";
            byte[] bytes = new byte[len];
            Marshal.Copy(p, bytes, 0, (int)len);
            return Encoding.UTF8.GetString(bytes);
        }

        public static string FromNative(IntPtr p)
        {
            return FromNative(p, StrLen(p));
        }

        public static string FromNativeOrNull(IntPtr p)
        {
            return p == IntPtr.Zero ? null : FromNative(p);
        }

        /// <summary>A string the library allocated: copied, then freed
        /// with modelapi_string_free.</summary>
        public static string TakeOwned(IntPtr p)
        {
            if (p == IntPtr.Zero)
                return null;
            try
            {
                return FromNative(p);
            }
            finally
            {
                Native.modelapi_string_free(p);
            }
        }

        private static long StrLen(IntPtr p)
        {
            if (p == IntPtr.Zero)
                return 0;
            long n = 0;
            while (Marshal.ReadByte(p, (int)n) != 0)
                n++;
            return n;
        }

        /// <summary>The messages as a JSON array.</summary>
        public static string MessagesJson(IList<Message> messages)
        {
            var sb = new StringBuilder("[");
            for (int i = 0; i < messages.Count; i++)
            {
                if (i > 0)
                    sb.Append(',');
                sb.Append("{\"role\":").Append(Quote(messages[i].Role))
                  .Append(",\"content\":").Append(Quote(messages[i].Content)).Append('}');
            }
            return sb.Append(']').ToString();
        }

        /// <summary>A JSON string literal.</summary>
        public static string Quote(string s)
        {
            if (s == null)
                return "null";
            var sb = new StringBuilder("\"");
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20)
                            sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else
                            sb.Append(c);
                        break;
                }
            }
            return sb.Append('"').ToString();
        }
    }

    /// <summary>The C functions. The library is found by the name
    /// "modelapi": libmodelapi.so on LD_LIBRARY_PATH (Mono, .NET),
    /// modelapi.dll beside the program or on PATH (Windows), or a Unity
    /// native plugin (Assets/Plugins); statically linked on iOS.</summary>
    public static class Native
    {
#if UNITY_IOS && !UNITY_EDITOR
        // iOS links native plugins statically.
        private const string Lib = "__Internal";
#else
        private const string Lib = "modelapi";
#endif

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate int EventFn(IntPtr userData, IntPtr eventPtr);

        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate int ChunkFn(IntPtr userData, IntPtr chunk, UIntPtr len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ClientHandle modelapi_new(byte[] model, byte[] apiBase, byte[] apiKey);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern ClientHandle modelapi_from_env();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_set_timeout_ms(ClientHandle api, ulong timeoutMs);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_set_max_retries(ClientHandle api, uint maxRetries);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_set_first_token_timeout_ms(ClientHandle api, ulong timeoutMs);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_add_fallback(ClientHandle api, byte[] apiBase, byte[] model, byte[] apiKey);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_set_hedge_ms(ClientHandle api, ulong hedgeMs);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_set_header(ClientHandle api, byte[] name, byte[] value);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_set_mock_responses(ClientHandle api, byte[] repliesJson);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        public delegate void TraceFn(IntPtr userData, int level, IntPtr line);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_set_trace(ClientHandle api, TraceFn onTrace, IntPtr userData);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_complete(ClientHandle api, [In] NativeMessage[] messages,
            UIntPtr count, byte[] mockResponse, out IntPtr outJson, out IntPtr outContent);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_complete_with(ClientHandle api, byte[] messagesJson,
            byte[] mockResponse, SafeHandle cancel, out IntPtr outJson, out IntPtr outContent);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_open(ClientHandle api, [In] NativeMessage[] messages,
            UIntPtr count, byte[] mockResponse, out StreamHandle outStream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_open_with(ClientHandle api, byte[] messagesJson,
            byte[] mockResponse, SafeHandle cancel, out StreamHandle outStream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_start(ClientHandle api, byte[] messagesJson,
            byte[] mockResponse, SafeHandle cancel, out StreamHandle outStream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_detached(ClientHandle api, byte[] messagesJson,
            byte[] mockResponse, out StreamHandle outStream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr modelapi_stream_request_url(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern UIntPtr modelapi_stream_request_header_count(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_request_header(StreamHandle stream, UIntPtr index,
            out IntPtr outName, out IntPtr outValue);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_request_body(StreamHandle stream, out IntPtr outBody,
            out UIntPtr outLen);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_feed_head(StreamHandle stream, int httpStatus,
            byte[] contentType);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_feed(StreamHandle stream, IntPtr bytes, UIntPtr len);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_feed_end(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_events(ClientHandle api, byte[] messagesJson,
            byte[] mockResponse, SafeHandle cancel, EventFn onEvent, IntPtr userData, out IntPtr outJson);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_with(ClientHandle api, byte[] messagesJson,
            byte[] mockResponse, SafeHandle cancel, ChunkFn onChunk, IntPtr userData);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_next_event(StreamHandle stream, out NativeEvent outEvent);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_poll(StreamHandle stream, uint waitMs, out NativeEvent outEvent);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_completion_json(StreamHandle stream, out IntPtr outJson);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_stream_cancel(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr modelapi_stream_finish_reason(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr modelapi_stream_id(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr modelapi_stream_model(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr modelapi_stream_request_id(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr modelapi_stream_endpoint(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern long modelapi_stream_first_event_ms(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int modelapi_stream_usage(StreamHandle stream, out ulong prompt,
            out ulong completion, out ulong total);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int modelapi_stream_fd(StreamHandle stream, out int wantsWrite);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern long modelapi_stream_wake_ms(StreamHandle stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void modelapi_stream_free(IntPtr stream);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern CancelHandle modelapi_cancel_new();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_cancel(CancelHandle cancel);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern Status modelapi_cancel_reset(CancelHandle cancel);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void modelapi_cancel_free(IntPtr cancel);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void modelapi_close(IntPtr api);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern void modelapi_string_free(IntPtr s);
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr modelapi_last_error();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern int modelapi_last_http_status();
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        internal static extern IntPtr modelapi_version();
    }
}
