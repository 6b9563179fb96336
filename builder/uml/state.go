package uml

// State bag keys, each with the step that produces it. Only this package knows the state bag.
const (
	// stateConfig (*Config), stateUI (packersdk.Ui) and stateHook (packersdk.Hook) are seeded by Builder.Run.
	stateConfig = "config"
	stateUI     = "ui"
	stateHook   = "hook"
	// stateError (error) is set by the step that fails.
	stateError = "error"
	// stateKernel (*kernel.Kernel) is produced by stepPreflight.
	stateKernel = "kernel"
	// stateWorkDir (string): the build's own temporary directory on the host, by stepPreflight.
	stateWorkDir = "work_dir"
	// stateImagePath (string) is produced by stepCreateImage.
	stateImagePath = "image_path"
	// stateImageSizeMiB (int): the image's size when stepResizeImage changed it.
	stateImageSizeMiB = "image_size_mib"
	// stateTarPath (string): the host path of the archive stepTarImage made in the staging directory.
	stateTarPath = "tar_path"
	// stateArtifactPath (string): the artifact file, by stepExportImage when format is not raw
	// (stateImagePath is the artifact otherwise).
	stateArtifactPath = "artifact_path"
	// stateRunAs (*syscall.Credential) and stateInitBinary (string) are produced by stepUnprivileged
	// when Packer runs as root: the user UML runs as and the copy of the plugin it runs as init.
	// stateKernelBinary (string), also by stepUnprivileged: a copy of the kernel that user can run,
	// when the kernel found is out of its reach (root's own, in ~/.local/share).
	stateRunAs        = "run_as"
	stateInitBinary   = "init_binary"
	stateKernelBinary = "kernel_binary"
	// stateMachine (*machine.Machine) and stateConsole (*machine.Console) are produced by stepBoot.
	stateMachine = "machine"
	stateConsole = "console"
	// stateBootStart (time.Time): when stepBoot started UML.
	stateBootStart = "boot_start"
	// stateAgent (*agent.Client) is produced by stepConnect.
	stateAgent = "agent"
	// stateProxyURL (string): the agent proxy's URL in the guest, by stepServeProxy when the guest
	// has the network.
	stateProxyURL = "proxy_url"
	// stateModuleRunner (*moduleRunner) is produced by stepPrepareModules.
	stateModuleRunner = "module_runner"
	// stateCommunicator (packersdk.Communicator) is produced by stepPrepareChroot; the SDK's
	// StepProvision reads it under this name.
	stateCommunicator = "communicator"
)
