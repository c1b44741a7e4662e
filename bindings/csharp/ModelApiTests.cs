// The C# binding's checks, run by tests/csharp.rs:
//   mono ModelApiTests.exe <test server url>   every check against the server
//   mono ModelApiTests.exe layout              the structs' sizes and offsets
// Each check prints "ok: ..." or "FAIL: ..."; the exit status is the number
// of failures (0: all passed).

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using ModelApi;

static class ModelApiTests
{
    static int failures;
    static int passed;

    static void Check(bool ok, string what)
    {
        if (ok)
        {
            passed++;
            Console.WriteLine("ok: " + what);
        }
        else
        {
            failures++;
            Console.WriteLine("FAIL: " + what);
        }
    }

    static void Equal<T>(T expected, T actual, string what)
    {
        bool ok = EqualityComparer<T>.Default.Equals(expected, actual);
        Check(ok, ok ? what : string.Format("{0}: expected [{1}], got [{2}]", what, expected, actual));
    }

    static ModelApiException Throws(Action action, string what)
    {
        try
        {
            action();
        }
        catch (ModelApiException e)
        {
            return e;
        }
        catch (Exception e)
        {
            Check(false, what + ": threw " + e.GetType().Name + ": " + e.Message);
            return null;
        }
        Check(false, what + ": did not throw");
        return null;
    }

    static void Run(string name, Action<string> test, string url)
    {
        Stopwatch clock = Stopwatch.StartNew();
        try
        {
            test(url);
        }
        catch (Exception e)
        {
            Check(false, name + " threw " + e);
        }
        Console.WriteLine(string.Format("-- {0}: {1} ms", name, clock.ElapsedMilliseconds));
    }

    static int Main(string[] args)
    {
        if (args.Length == 1 && args[0] == "layout")
        {
            Layout();
            return 0;
        }
        if (args.Length != 1)
        {
            Console.Error.WriteLine("usage: ModelApiTests.exe <url> | layout");
            return 2;
        }
        string url = args[0];
        Equal("0.1.0", Client.Version, "version");
        Run("Complete", Complete, url);
        Run("StreamEvents", StreamEventsForeach, url);
        Run("ToolCalls", ToolCalls, url);
        Run("Refusal", Refusal, url);
        Run("PollMode", PollMode, url);
        Run("CancelToken", CancelFromAnotherThread, url);
        Run("StreamCancel", StreamCancelFromAnotherThread, url);
        Run("StreamDispose", DisposeFromAnotherThread, url);
        Run("SharedToken", SharedToken, url);
        Run("Detached", Detached, url);
        Run("Errors", Errors, url);
        Run("BadArguments", BadArguments, url);
        Run("Canned", Canned, url);
        Run("CannedBySetter", CannedBySetter, url);
        Run("Callbacks", Callbacks, url);
        Run("Dispose", DisposeRules, url);
        Run("Trace", Trace, url);
        Run("Fallback", Fallback, url);
        // Finalizers of anything left over run without crashing.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Console.WriteLine(string.Format("{0} passed, {1} failed", passed, failures));
        return failures;
    }

    static void Layout()
    {
        Console.WriteLine("ModelApiEvent size {0} kind {1} text {2} len {3} tool_index {4} tool_id {5} tool_name {6}",
            Marshal.SizeOf(typeof(NativeEvent)),
            Marshal.OffsetOf(typeof(NativeEvent), "kind"),
            Marshal.OffsetOf(typeof(NativeEvent), "text"),
            Marshal.OffsetOf(typeof(NativeEvent), "len"),
            Marshal.OffsetOf(typeof(NativeEvent), "tool_index"),
            Marshal.OffsetOf(typeof(NativeEvent), "tool_id"),
            Marshal.OffsetOf(typeof(NativeEvent), "tool_name"));
        Type message = typeof(NativeEvent).Assembly.GetType("ModelApi.NativeMessage");
        Console.WriteLine("ModelApiMessage size {0} role {1} content {2}",
            Marshal.SizeOf(message), Marshal.OffsetOf(message, "role"), Marshal.OffsetOf(message, "content"));
    }

    const string Unicode = "Grüße, 世界 🌍 \"quoted\" \\ naïve";

    static void Complete(string url)
    {
        using (var client = new Client("ok", url))
        {
            Completion c = client.Complete(new[] { Message.System("Be brief."), Message.User("Hi") });
            Equal("Hello from the test server", c.Content, "Complete: content");
            Check(c.Json.Contains("\"chatcmpl-9\""), "Complete: the response JSON");
        }
        using (var client = new Client("echo", url))
        {
            // UTF-8 both ways: the server answers with the last message.
            Completion c = client.Complete(new[] { Message.User(Unicode) });
            Equal(Unicode, c.Content, "Complete: UTF-8 in and out (Message array)");
            c = client.CompleteJson("[{\"role\":\"user\",\"content\":" + Quote(Unicode) + "}]");
            Equal(Unicode, c.Content, "CompleteJson: UTF-8 in and out");
        }
    }

    static string Quote(string s)
    {
        return "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
    }

    static void Fallback(string url)
    {
        using (var client = new Client("ok", "http://127.0.0.1:1"))
        {
            client.SetMockResponses(null);
            client.SetMaxRetries(0);
            client.SetFirstTokenTimeout(TimeSpan.FromSeconds(5));
            client.SetHedge(TimeSpan.Zero);
            client.AddFallback(url, "ok", null);
            using (ChatStream stream = client.OpenStream(new[] { Message.User("Hi") }))
            {
                var sb = new StringBuilder();
                foreach (StreamEvent ev in stream)
                    sb.Append(ev.Text);
                Equal("Hello from the test server", sb.ToString(), "fallback: its text");
                Equal(url, stream.Endpoint, "fallback: the endpoint that served");
                Check(stream.FirstEventMs >= 0, "fallback: the time to the first event");
            }
            try
            {
                client.AddFallback("ftp://nope", "m", null);
                Check(false, "fallback: a bad api_base throws");
            }
            catch (ModelApiException e)
            {
                Equal(Status.InvalidArgument, e.Status, "fallback: a bad api_base");
            }
        }
    }

    static void StreamEventsForeach(string url)
    {
        using (var client = new Client("ok", url))
        {
            var text = new StringBuilder();
            int events = 0, others = 0;
            using (ChatStream stream = client.OpenStreamJson(
                "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"stream_options\":{\"include_usage\":true}}"))
            {
                foreach (StreamEvent ev in stream)
                {
                    events++;
                    if (ev.Kind != EventKind.Content)
                        others++;
                    text.Append(ev.Text);
                }
                Equal("Hello from the test server", text.ToString(), "stream: the text of the events");
                Equal(5, events, "stream: five events");
                Equal(0, others, "stream: content events only");
                Equal("stop", stream.FinishReason, "stream: finish_reason");
                Equal("chatcmpl-1", stream.Id, "stream: id");
                Equal("test-model", stream.Model, "stream: model");
                Equal("req-cs-1", stream.RequestId, "stream: x-request-id");
                ulong p, c, t;
                Check(stream.TryGetUsage(out p, out c, out t) && p == 3 && c == 5 && t == 8, "stream: usage 3 + 5 = 8");
                string json = stream.CompletionJson;
                Check(json.Contains("\"content\":\"Hello from the test server\""), "stream: completion JSON " + json);
                StreamEvent after;
                Check(!stream.Next(out after), "stream: Next after the end is false");
            }
            using (ChatStream stream = client.OpenStream(new[] { Message.User("Hi") }))
            {
                var sb = new StringBuilder();
                foreach (StreamEvent ev in stream)
                    sb.Append(ev.Text);
                Equal("Hello from the test server", sb.ToString(), "stream (Message array): text");
            }
        }
        using (var client = new Client("echo", url))
        using (ChatStream stream = client.OpenStream(new[] { Message.User(Unicode) }))
        {
            var sb = new StringBuilder();
            foreach (StreamEvent ev in stream)
                sb.Append(ev.Text);
            Equal(Unicode, sb.ToString(), "stream: UTF-8 pieces (split inside characters) reassembled");
        }
    }

    static void ToolCalls(string url)
    {
        using (var client = new Client("tools", url))
        using (ChatStream stream = client.OpenStreamJson(
            "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}],\"tools\":[{\"type\":\"function\"," +
            "\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}}]}"))
        {
            var reasoning = new StringBuilder();
            var content = new StringBuilder();
            var args = new Dictionary<uint, StringBuilder>();
            var ids = new Dictionary<uint, string>();
            var names = new Dictionary<uint, string>();
            foreach (StreamEvent ev in stream)
            {
                switch (ev.Kind)
                {
                    case EventKind.Reasoning: reasoning.Append(ev.Text); break;
                    case EventKind.Content: content.Append(ev.Text); break;
                    case EventKind.ToolCall:
                        if (!args.ContainsKey(ev.ToolIndex))
                            args[ev.ToolIndex] = new StringBuilder();
                        args[ev.ToolIndex].Append(ev.Text);
                        if (ev.ToolId != null) ids[ev.ToolIndex] = ev.ToolId;
                        if (ev.ToolName != null) names[ev.ToolIndex] = ev.ToolName;
                        break;
                }
            }
            Equal("Two cities: Zürich and São Paulo.", reasoning.ToString(), "tools: reasoning events");
            Equal("Let me look.", content.ToString(), "tools: content events");
            Equal(2, args.Count, "tools: two calls");
            Equal("call_zrh", ids.ContainsKey(0) ? ids[0] : null, "tools: id of call 0");
            Equal("call_sao", ids.ContainsKey(1) ? ids[1] : null, "tools: id of call 1");
            Equal("get_weather", names.ContainsKey(0) ? names[0] : null, "tools: name of call 0");
            Equal("get_weather", names.ContainsKey(1) ? names[1] : null, "tools: name of call 1");
            Equal("{\"city\": \"Zürich\"}", args.ContainsKey(0) ? args[0].ToString() : null, "tools: arguments of call 0");
            Equal("{\"city\": \"São Paulo\"}", args.ContainsKey(1) ? args[1].ToString() : null, "tools: arguments of call 1");
            Equal("tool_calls", stream.FinishReason, "tools: finish_reason");
            string json = stream.CompletionJson;
            Check(json.Contains("\"tool_calls\":[") && json.Contains("call_sao") && json.Contains("get_weather"),
                "tools: the assembled completion has the calls: " + json);
        }
    }

    static void Refusal(string url)
    {
        using (var client = new Client("refusal", url))
        using (ChatStream stream = client.OpenStreamJson("[{\"role\":\"user\",\"content\":\"Do a bad thing\"}]"))
        {
            var refusal = new StringBuilder();
            foreach (StreamEvent ev in stream)
                if (ev.Kind == EventKind.Refusal)
                    refusal.Append(ev.Text);
            Equal("I can't help with that.", refusal.ToString(), "refusal events");
        }
    }

    static void PollMode(string url)
    {
        using (var client = new Client("drip", url))
        using (ChatStream stream = client.StartStream(new[] { Message.User("Hi") }))
        {
            // A game loop: one Poll(waitMs 0) per 5 ms frame, bounded.
            var text = new StringBuilder();
            int frames = 0, pending = 0, events = 0;
            Status last = Status.Pending;
            Stopwatch clock = Stopwatch.StartNew();
            while (clock.ElapsedMilliseconds < 20000)
            {
                frames++;
                StreamEvent ev;
                while ((last = stream.Poll(out ev)) == Status.Ok)
                {
                    events++;
                    text.Append(ev.Text);
                }
                if (last == Status.Done)
                    break;
                pending++;
                bool wantsWrite;
                stream.Fd(out wantsWrite);
                if (stream.WakeMs < 0)
                    Check(false, "poll: WakeMs < 0 while the stream goes on");
                Thread.Sleep(5);
            }
            Equal(Status.Done, last, "poll: the stream ends with Done");
            Equal("Hello from the test server", text.ToString(), "poll: the text");
            Check(pending > 0, "poll: some frames had nothing yet (Pending), " + pending + " of " + frames);
            Equal(-1L, stream.WakeMs, "poll: WakeMs -1 once over");
            StreamEvent again;
            Equal(Status.Done, stream.Poll(out again, 10), "poll: Done again after the end");
        }
        // A network error comes from Poll, as an exception.
        using (var client = new Client("unauthorized", url))
        using (ChatStream stream = client.StartStream(new[] { Message.User("Hi") }))
        {
            ModelApiException e = Throws(() =>
            {
                Stopwatch clock = Stopwatch.StartNew();
                StreamEvent ev;
                while (clock.ElapsedMilliseconds < 10000 && stream.Poll(out ev, 50) != Status.Done)
                {
                }
            }, "poll: 401");
            if (e != null)
            {
                Equal(Status.HttpError, e.Status, "poll: 401 is HttpError");
                Equal(401, e.HttpStatus, "poll: HttpStatus 401");
            }
        }
    }

    static void CancelFromAnotherThread(string url)
    {
        using (var client = new Client("long", url))
        using (var token = new CancelToken())
        {
            var chunks = 0;
            Stopwatch clock = Stopwatch.StartNew();
            var canceller = new Thread(() =>
            {
                Thread.Sleep(300);
                token.Cancel();
            });
            ModelApiException e;
            using (ChatStream stream = client.OpenStreamJson("[{\"role\":\"user\",\"content\":\"Count\"}]", token))
            {
                canceller.Start();
                e = Throws(() =>
                {
                    foreach (StreamEvent ev in stream)
                        chunks++;
                }, "cancel token: the read stops");
            }
            canceller.Join();
            long ms = clock.ElapsedMilliseconds;
            if (e != null)
                Equal(Status.Aborted, e.Status, "cancel token: Aborted");
            // The whole stream takes 10 s or more; a cancel stops it at once.
            Check(ms < 5000, "cancel token: stopped after " + ms + " ms (the stream lasts 10 s)");
            Check(chunks > 0 && chunks < 1000, "cancel token: " + chunks + " chunks before the cancel");

            // The token stays cancelled until Reset.
            e = Throws(() => client.CompleteJson("[{\"role\":\"user\",\"content\":\"x\"}]", token), "cancelled token: later call");
            if (e != null)
                Equal(Status.Aborted, e.Status, "cancelled token: a later call is Aborted at once");
            token.Reset();
        }
        // A blocking complete that waits for the server, cancelled.
        using (var client = new Client("slow", url))
        using (var token = new CancelToken())
        {
            Stopwatch clock = Stopwatch.StartNew();
            var canceller = new Thread(() =>
            {
                Thread.Sleep(200);
                token.Cancel();
            });
            canceller.Start();
            ModelApiException e = Throws(() => client.CompleteJson("[{\"role\":\"user\",\"content\":\"x\"}]", token),
                "cancel token: complete");
            canceller.Join();
            if (e != null)
                Equal(Status.Aborted, e.Status, "cancel token: complete Aborted");
            Check(clock.ElapsedMilliseconds < 4000, "cancel token: complete stopped after " + clock.ElapsedMilliseconds + " ms");
        }
    }

    static void StreamCancelFromAnotherThread(string url)
    {
        using (var client = new Client("long", url))
        {
            ChatStream stream = client.OpenStreamJson("[{\"role\":\"user\",\"content\":\"Count\"}]");
            Stopwatch clock = Stopwatch.StartNew();
            var canceller = new Thread(() =>
            {
                Thread.Sleep(300);
                stream.Cancel();
            });
            canceller.Start();
            ModelApiException e = Throws(() =>
            {
                StreamEvent ev;
                while (stream.Next(out ev))
                {
                }
            }, "ChatStream.Cancel: the read stops");
            canceller.Join();
            if (e != null)
                Equal(Status.Aborted, e.Status, "ChatStream.Cancel: Aborted");
            Check(clock.ElapsedMilliseconds < 5000, "ChatStream.Cancel: stopped after " + clock.ElapsedMilliseconds + " ms");
            StreamEvent after;
            Check(!stream.Next(out after), "ChatStream.Cancel: later reads are Done");
            stream.Dispose();
        }
    }

    static void DisposeFromAnotherThread(string url)
    {
        using (var client = new Client("long", url))
        {
            ChatStream stream = client.OpenStreamJson("[{\"role\":\"user\",\"content\":\"Count\"}]");
            Stopwatch clock = Stopwatch.StartNew();
            var disposer = new Thread(() =>
            {
                Thread.Sleep(300);
                stream.Dispose();
            });
            disposer.Start();
            ModelApiException e = Throws(() =>
            {
                foreach (StreamEvent ev in stream)
                {
                }
            }, "Dispose from another thread: the read stops");
            disposer.Join();
            if (e != null)
                Equal(Status.Aborted, e.Status, "Dispose from another thread: the blocked read is Aborted");
            Check(clock.ElapsedMilliseconds < 5000, "Dispose from another thread: after " + clock.ElapsedMilliseconds + " ms");
            bool threw = false;
            try
            {
                StreamEvent ev;
                stream.Next(out ev);
            }
            catch (ObjectDisposedException)
            {
                threw = true;
            }
            Check(threw, "Dispose from another thread: later reads throw ObjectDisposedException");
        }
    }

    static void SharedToken(string url)
    {
        using (var client = new Client("long", url))
        {
            var token = new CancelToken();
            ChatStream a = client.OpenStreamJson("[{\"role\":\"user\",\"content\":\"a\"}]", token);
            ChatStream b = client.StartStream("[{\"role\":\"user\",\"content\":\"b\"}]", token);
            // The token may be disposed before its streams: they keep it.
            token.Dispose();
            bool threw = false;
            try
            {
                token.Cancel();
            }
            catch (ObjectDisposedException)
            {
                threw = true;
            }
            Check(threw, "a disposed token: Cancel throws ObjectDisposedException");
            StreamEvent ev;
            Check(a.Next(out ev) && ev.Text == "x", "a stream outlives its disposed token");
            // Cancelling one stream cancels the token they share.
            a.Cancel();
            ModelApiException e = Throws(() =>
            {
                Stopwatch clock = Stopwatch.StartNew();
                while (clock.ElapsedMilliseconds < 10000 && b.Poll(out ev, 50) != Status.Done)
                {
                }
            }, "shared token: the other stream");
            if (e != null)
                Equal(Status.Aborted, e.Status, "ChatStream.Cancel cancels the shared token: the other stream is Aborted");
            a.Dispose();
            b.Dispose();
        }
    }

    /// <summary>.NET's own HTTP stack carries a detached stream's bytes,
    /// as UnityWebRequest would: the request as the library built it,
    /// the answer fed in the pieces the stack hands out.</summary>
    static string CarryDetached(ChatStream stream, int pieceBytes, out int pendings)
    {
        var request = (System.Net.HttpWebRequest)System.Net.WebRequest.Create(stream.RequestUrl);
        request.Method = "POST";
        request.Timeout = 20000;
        bool key = false;
        foreach (KeyValuePair<string, string> header in stream.RequestHeaders)
        {
            switch (header.Key.ToLowerInvariant())
            {
                case "content-type": request.ContentType = header.Value; break;
                case "accept": request.Accept = header.Value; break;
                case "user-agent": request.UserAgent = header.Value; break;
                default:
                    if (header.Key.ToLowerInvariant() == "authorization")
                        key = header.Value == "Bearer sk-detached-1234";
                    request.Headers[header.Key] = header.Value;
                    break;
            }
        }
        Check(key, "detached: the key is among the request's headers");
        byte[] body = stream.RequestBody;
        Check(Encoding.UTF8.GetString(body).Contains("\"stream\":true"), "detached: a stream request");
        using (var upload = request.GetRequestStream())
            upload.Write(body, 0, body.Length);
        System.Net.HttpWebResponse response;
        try
        {
            response = (System.Net.HttpWebResponse)request.GetResponse();
        }
        catch (System.Net.WebException e)
        {
            response = (System.Net.HttpWebResponse)e.Response;
        }
        var text = new StringBuilder();
        pendings = 0;
        using (response)
        using (var input = response.GetResponseStream())
        {
            stream.FeedHead((int)response.StatusCode, response.ContentType);
            var piece = new byte[pieceBytes];
            int n;
            while ((n = input.Read(piece, 0, piece.Length)) > 0)
            {
                stream.Feed(piece, 0, n);
                StreamEvent ev;
                Status s;
                while ((s = stream.Poll(out ev)) == Status.Ok)
                    text.Append(ev.Text);
                if (s == Status.Pending)
                    pendings++;
            }
            stream.FeedEnd();
            StreamEvent last;
            while (stream.Poll(out last) == Status.Ok)
                text.Append(last.Text);
        }
        return text.ToString();
    }

    static void Detached(string url)
    {
        using (var client = new Client("ok", url, "sk-detached-1234"))
        {
            using (ChatStream stream = client.StreamDetached(new[] { Message.User("Hi") }))
            {
                Equal(url + "/v1/chat/completions", stream.RequestUrl, "detached: the URL");
                StreamEvent ev;
                Equal(Status.Pending, stream.Poll(out ev), "detached: Pending before anything is fed");
                ModelApiException e = Throws(() => stream.Next(out ev), "detached: Next before anything is fed");
                if (e != null)
                    Equal(Status.Pending, e.Status, "detached: Next throws with Status.Pending");
                bool wantsWrite;
                int fd = stream.Fd(out wantsWrite);
                Equal(-1, fd, "detached: no descriptor");
                int pendings;
                // Small pieces: events split across them.
                Equal("Hello from the test server", CarryDetached(stream, 7, out pendings), "detached: the text");
                Check(pendings > 0, "detached: some pieces did not complete an event");
                Equal("stop", stream.FinishReason, "detached: finish_reason");
                Check(stream.CompletionJson.Contains("\"content\":\"Hello from the test server\""),
                    "detached: the completion JSON");
                e = Throws(() => stream.FeedHead(200, "text/event-stream"), "detached: a second head");
                if (e != null)
                    Equal(Status.InvalidArgument, e.Status, "detached: a second head is InvalidArgument");
            }
            using (ChatStream stream = client.OpenStream(new[] { Message.User("Hi") }))
            {
                Equal(null, stream.RequestUrl, "a stream the library carries has no request to hand out");
                ModelApiException e = Throws(() => stream.Feed(new byte[] { 1 }), "Feed on a stream that is not detached");
                if (e != null)
                    Equal(Status.InvalidArgument, e.Status, "Feed on a stream that is not detached: InvalidArgument");
            }
        }
        using (var client = new Client("unauthorized", url, "sk-detached-1234"))
        using (ChatStream stream = client.StreamDetached(new[] { Message.User("Hi") }))
        {
            int pendings;
            ModelApiException e = Throws(() => CarryDetached(stream, 4096, out pendings), "detached 401");
            if (e != null)
            {
                Equal(Status.HttpError, e.Status, "detached 401: HttpError");
                Equal(401, e.HttpStatus, "detached 401: HttpStatus");
                Check(e.Message.Contains("Invalid API key provided"), "detached 401: the server's message " + e.Message);
            }
        }
    }

    static void Errors(string url)
    {
        using (var client = new Client("unauthorized", url, "sk-wrong"))
        {
            ModelApiException e = Throws(() => client.Complete(new[] { Message.User("Hi") }), "401 complete");
            if (e != null)
            {
                Equal(Status.HttpError, e.Status, "401: Status");
                Equal(401, e.HttpStatus, "401: HttpStatus");
                Check(e.Message.Contains("Invalid API key provided"), "401: Message from modelapi_last_error: " + e.Message);
                Check(!e.Message.Contains("sk-wrong"), "401: the key is not in the message");
            }
            e = Throws(() => client.OpenStream(new[] { Message.User("Hi") }), "401 stream");
            if (e != null)
                Equal(401, e.HttpStatus, "401 stream: HttpStatus");
        }
        // An error event in the middle of a stream, after one piece.
        using (var client = new Client("stream-error", url))
        using (ChatStream stream = client.OpenStreamJson("[{\"role\":\"user\",\"content\":\"Hi\"}]"))
        {
            var text = new StringBuilder();
            ModelApiException e = Throws(() =>
            {
                foreach (StreamEvent ev in stream)
                    text.Append(ev.Text);
            }, "stream error event");
            if (e != null)
            {
                Equal(Status.ServerError, e.Status, "stream error: ServerError");
                Check(e.Message.Contains("overloaded"), "stream error: message " + e.Message);
            }
            Equal("Partial", text.ToString(), "stream error: the piece before it");
            Check(stream.CompletionJson.Contains("Partial"), "stream error: CompletionJson keeps what arrived");
        }
        // Nothing listens there.
        using (var client = new Client("ok", "http://127.0.0.1:9"))
        {
            client.SetMaxRetries(0);
            ModelApiException e = Throws(() => client.Complete(new[] { Message.User("Hi") }), "connection refused");
            if (e != null)
                Equal(Status.TransportError, e.Status, "connection refused: TransportError");
        }
    }

    static void BadArguments(string url)
    {
        ModelApiException e = Throws(() => new Client("m", "not a url"), "bad URL");
        if (e != null)
        {
            Equal(Status.InvalidArgument, e.Status, "bad URL: InvalidArgument");
            Check(e.Message.Length > 0, "bad URL: a message: " + e.Message);
        }
        using (var client = new Client("ok", url))
        {
            e = Throws(() => client.CompleteJson("this is not JSON"), "bad JSON");
            if (e != null)
                Equal(Status.InvalidArgument, e.Status, "bad JSON: InvalidArgument");
            e = Throws(() => client.StartStream("{\"messages\": 3}"), "bad request object");
            if (e != null)
                Equal(Status.InvalidArgument, e.Status, "bad request object: InvalidArgument (from StartStream)");
            e = Throws(() => client.SetTimeout(TimeSpan.Zero), "timeout 0");
            if (e != null)
                Equal(Status.InvalidArgument, e.Status, "timeout 0: InvalidArgument");
            e = Throws(() => client.SetHeader("Bad Name", "v"), "bad header");
            if (e != null)
                Equal(Status.InvalidArgument, e.Status, "bad header: InvalidArgument");
            e = Throws(() => client.Complete(new[] { new Message("user", null) }), "null content");
            if (e != null)
                Equal(Status.InvalidArgument, e.Status, "null content: InvalidArgument");
            bool threw = false;
            try
            {
                client.Complete(new[] { Message.User("a\0b") });
            }
            catch (ArgumentException)
            {
                threw = true;
            }
            Check(threw, "a NUL inside a string: ArgumentException (never cut)");
        }
    }

    static void Canned(string url)
    {
        // DEBUG_MOCK_RESPONSES is read when a client is created.
        Environment.SetEnvironmentVariable("DEBUG_MOCK_RESPONSES",
            "[\"Canned hello, Zürich\", {\"reasoning_content\": \"I should look it up.\", \"tool_calls\": " +
            "[{\"function\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}}]}, \"litellm.RateLimitError\"]");
        Client client;
        try
        {
            client = new Client("canned-model", "http://127.0.0.1:9");
        }
        finally
        {
            Environment.SetEnvironmentVariable("DEBUG_MOCK_RESPONSES", null);
        }
        using (client)
        {
            Equal("Canned hello, Zürich", client.Complete(new[] { Message.User("Hi") }).Content, "canned: complete");
            var kinds = new List<EventKind>();
            string name = null;
            string json = client.StreamEvents("[{\"role\":\"user\",\"content\":\"Weather?\"}]", ev =>
            {
                kinds.Add(ev.Kind);
                if (ev.ToolName != null)
                    name = ev.ToolName;
                return true;
            });
            Check(kinds.Contains(EventKind.Reasoning) && kinds.Contains(EventKind.ToolCall), "canned: reasoning and tool call events");
            Equal("get_weather", name, "canned: the tool's name");
            Check(json.Contains("\"finish_reason\":\"tool_calls\""), "canned: finish_reason tool_calls: " + json);
            ModelApiException e = Throws(() => client.Complete(new[] { Message.User("Hi") }), "canned RateLimitError");
            if (e != null)
            {
                Equal(Status.HttpError, e.Status, "canned RateLimitError: HttpError");
                Equal(429, e.HttpStatus, "canned RateLimitError: 429");
            }
        }
    }

    static void CannedBySetter(string url)
    {
        // Set on the client: no environment involved (.NET, Unity).
        using (var client = new Client("canned-model", url))
        {
            client.SetMockResponses("[\"Set on the client\"]");
            Equal("Set on the client", client.Complete(new[] { Message.User("Hi") }).Content,
                  "SetMockResponses: the canned reply answers");
            ModelApiException e = Throws(() => client.SetMockResponses("[{\"colour\": \"blue\"}]"),
                                         "SetMockResponses: a malformed reply");
            if (e != null)
                Equal(Status.InvalidArgument, e.Status, "SetMockResponses: a malformed reply is InvalidArgument");
            client.SetMockResponses(null);
        }
    }

    static void Callbacks(string url)
    {
        using (var client = new Client("tools", url))
        {
            var kinds = new List<EventKind>();
            var args = new StringBuilder();
            string json = client.StreamEvents("[{\"role\":\"user\",\"content\":\"Weather?\"}]", ev =>
            {
                kinds.Add(ev.Kind);
                if (ev.Kind == EventKind.ToolCall && ev.ToolIndex == 1)
                    args.Append(ev.Text);
                return true;
            });
            Check(kinds.Contains(EventKind.Reasoning) && kinds.Contains(EventKind.Content) && kinds.Contains(EventKind.ToolCall),
                "callback: every kind of event, " + kinds.Count + " in all");
            Equal("{\"city\": \"São Paulo\"}", args.ToString(), "callback: the arguments of call 1");
            Check(json.Contains("\"finish_reason\":\"tool_calls\""), "callback: the completion JSON");

            // A collection in the middle of a callback moves nothing the
            // library holds (the static delegate, the GCHandle's target).
            var collected = new StringBuilder();
            client.StreamText("[{\"role\":\"user\",\"content\":\"x\"}]", chunk =>
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                collected.Append(chunk);
                return true;
            });
            Equal("Let me look.", collected.ToString(), "callback: a GC inside each callback");

            // Returning false stops the stream.
            int seen = 0;
            ModelApiException e = Throws(() => client.StreamEvents("[{\"role\":\"user\",\"content\":\"x\"}]",
                ev => ++seen < 2), "callback stop");
            if (e != null)
                Equal(Status.Aborted, e.Status, "callback returning false: Aborted");
            Equal(2, seen, "callback returning false: no event after it");

            // An exception in the callback never crosses the native frames:
            // it stops the stream and comes out of the call.
            e = Throws(() => client.StreamEvents("[{\"role\":\"user\",\"content\":\"x\"}]",
                ev => { throw new InvalidOperationException("boom"); }), "callback throws");
            if (e != null)
                Check(e.InnerException is InvalidOperationException && e.InnerException.Message == "boom",
                    "callback exception: rethrown as the inner exception");
        }
        using (var client = new Client("echo", url))
        {
            var text = new StringBuilder();
            int chunks = 0;
            client.StreamText("[{\"role\":\"user\",\"content\":" + Quote(Unicode) + "}]", chunk =>
            {
                chunks++;
                text.Append(chunk);
                return true;
            });
            Equal(Unicode, text.ToString(), "chunk callback: UTF-8 text");
            Check(chunks > 1, "chunk callback: " + chunks + " chunks");
        }
        // Several threads at once on one client, each with its own callback
        // state (GCHandle per call).
        using (var client = new Client("ok", url))
        {
            var results = new string[4];
            var threads = new List<Thread>();
            for (int i = 0; i < results.Length; i++)
            {
                int n = i;
                var t = new Thread(() =>
                {
                    var sb = new StringBuilder();
                    try
                    {
                        client.StreamEvents("[{\"role\":\"user\",\"content\":\"Hi\"}]", ev => { sb.Append(ev.Text); return true; });
                        results[n] = sb.ToString();
                    }
                    catch (Exception ex)
                    {
                        results[n] = ex.Message;
                    }
                });
                threads.Add(t);
                t.Start();
            }
            foreach (Thread t in threads)
                t.Join();
            Equal("Hello from the test server|Hello from the test server|Hello from the test server|Hello from the test server",
                string.Join("|", results), "callbacks on four threads at once on one client");
        }
    }

    static void Trace(string url)
    {
        var lines = new List<string>();
        using (var client = new Client("ok", url, "sk-trace-secret"))
        {
            client.SetTrace((level, line) => lines.Add(level + " " + line));
            client.Complete(new[] { Message.User("a secret question") });
            int seen = lines.Count;
            Check(seen > 0, "trace: " + seen + " lines for one call, e.g. " + (seen > 0 ? lines[0] : ""));
            Check(lines.TrueForAll(l => !l.Contains("sk-trace-secret") && !l.Contains("secret question")),
                "trace: neither the key nor the content");
            client.SetTrace((level, line) => { throw new InvalidOperationException("a hook that throws"); });
            Equal("Hello from the test server", client.Complete(new[] { Message.User("Hi") }).Content,
                "trace: a hook that throws changes nothing");
            client.SetTrace(null);
            lines.Clear();
            client.Complete(new[] { Message.User("Hi") });
            Equal(0, lines.Count, "trace: off");
        }
        using (var client = new Client("unauthorized", url))
        {
            lines.Clear();
            client.SetTrace((level, line) => lines.Add(level + " " + line));
            Throws(() => client.Complete(new[] { Message.User("Hi") }), "trace: a failing call");
            Check(lines.Exists(l => l.StartsWith("Error ")), "trace: the error at level Error");
        }
    }

    static void DisposeRules(string url)
    {
        var client = new Client("ok", url);
        ChatStream stream = client.OpenStream(new[] { Message.User("Hi") });
        // The stream stays valid after its client is closed.
        client.Dispose();
        client.Dispose();
        var sb = new StringBuilder();
        foreach (StreamEvent ev in stream)
            sb.Append(ev.Text);
        Equal("Hello from the test server", sb.ToString(), "a stream outlives its client");
        stream.Dispose();
        stream.Dispose();
        bool threw = false;
        try
        {
            StreamEvent ev;
            stream.Next(out ev);
        }
        catch (ObjectDisposedException)
        {
            threw = true;
        }
        Check(threw, "a disposed stream: ObjectDisposedException, never a freed pointer");
        threw = false;
        try
        {
            client.Complete(new[] { Message.User("Hi") });
        }
        catch (ObjectDisposedException)
        {
            threw = true;
        }
        Check(threw, "a disposed client: ObjectDisposedException");
        // Left to the finalizers.
        new Client("ok", url).OpenStream(new[] { Message.User("Hi") });
        new CancelToken();
    }
}
