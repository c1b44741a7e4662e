// A Unity MonoBehaviour: an NPC whose line is streamed from a model while
// the game keeps running. The request starts in Ask() and never blocks the
// main thread: each Update() takes the events that have arrived (Poll with
// no wait) and appends them to the line on screen.
//
// Setup: ModelApi.cs in Assets/, libmodelapi.so (modelapi.dll,
// libmodelapi.dylib) in Assets/Plugins/. Tested by tests/csharp.rs only as
// far as compiling it against a stub of UnityEngine.

using System.Text;
using ModelApi;
using UnityEngine;

public class NpcDialogue : MonoBehaviour
{
    [SerializeField] private string apiBase = "http://127.0.0.1:8080/v1";
    [SerializeField] private string model = "local-model";
    [SerializeField, TextArea] private string persona = "You are a grumpy blacksmith. Answer in one sentence.";

    /// <summary>What the NPC has said so far (drawn by the UI).</summary>
    public string Line { get { return line.ToString(); } }
    public bool Speaking { get { return stream != null; } }

    private Client client;
    private CancelToken cancel;
    private ChatStream stream;
    private readonly StringBuilder line = new StringBuilder();

    private void Awake()
    {
        client = new Client(model, apiBase);
        cancel = new CancelToken();
    }

    /// <summary>Starts the NPC's answer to the player; returns at once.</summary>
    public void Ask(string playerLine)
    {
        StopSpeaking();
        line.Length = 0;
        cancel.Reset();
        try
        {
            stream = client.StartStream(new[] { Message.System(persona), Message.User(playerLine) }, cancel);
        }
        catch (ModelApiException e)
        {
            Debug.LogError("NPC cannot ask: " + e.Status + ": " + e.Message);
        }
    }

    private void Update()
    {
        if (stream == null)
            return;
        try
        {
            StreamEvent ev;
            Status status;
            // Every event that has arrived, without waiting.
            while ((status = stream.Poll(out ev)) == Status.Ok)
            {
                if (ev.Kind == EventKind.Content)
                    line.Append(ev.Text);
            }
            if (status == Status.Done)
            {
                Debug.Log("NPC done (" + stream.FinishReason + "): " + line);
                StopSpeaking();
            }
        }
        catch (ModelApiException e)
        {
            // HttpStatus is 401 for a bad key, 429 when rate-limited, ...
            Debug.LogWarning("NPC stream failed: " + e.Status + " " + e.HttpStatus + ": " + e.Message);
            StopSpeaking();
        }
    }

    /// <summary>Interrupts the NPC (the server stops generating).</summary>
    public void StopSpeaking()
    {
        if (stream != null)
        {
            stream.Dispose();
            stream = null;
        }
    }

    private void OnDestroy()
    {
        StopSpeaking();
        if (cancel != null)
            cancel.Dispose();
        if (client != null)
            client.Dispose();
    }
}
